"""The tiny UNets depend on the timestep, so a wrong timestep shows in every test that runs them.

With one channel per GroupNorm group (32 groups on 32 channels), GroupNorm removes the
per-channel time embedding and the output hardly moves with the timestep; the build script
uses 8 groups (4 channels each). Checked on the torch UNet the script makes and on every
committed ONNX UNet.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

MODELS = Path(__file__).resolve().parents[2] / "models"
TINY = MODELS / "tiny"
# The smallest relative change of the output between timesteps 900 and 100 that counts as
# "measurable"; with 32 groups the SD tiny UNet moved by about 1e-6.
MEASURABLE = 1e-2
UNETS = sorted(p.parent.parent.name for p in TINY.glob("*/unet/model.onnx"))


def relative_change(early: np.ndarray, late: np.ndarray) -> float:
    """Largest difference between two outputs, relative to the first's largest value."""
    return float(np.abs(early - late).max() / np.abs(early).max())


def test_the_tiny_unet_output_changes_with_the_timestep() -> None:
    sys.path.insert(0, str(MODELS))
    try:
        import build_tiny
    finally:
        sys.path.remove(str(MODELS))
    torch.manual_seed(build_tiny.SEED + 1)
    unet = build_tiny.make_unet(build_tiny.TINY["sd-tiny"], cross_dim=32, full=False).eval()
    sample = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    hidden = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        early, late = (unet(sample, t, hidden).sample.numpy() for t in (900.0, 100.0))
    change = relative_change(early, late)
    assert change > MEASURABLE, f"the timestep moves the output by only {change:.2e}"


def _feeds(session: ort.InferenceSession, timestep: float) -> dict[str, np.ndarray]:
    """Seeded inputs for any tiny UNet graph (SD, inpaint, SDXL with time ids, LCM)."""
    rng = np.random.default_rng(0)
    feeds: dict[str, np.ndarray] = {}
    for item in session.get_inputs():
        dtype = np.float16 if "float16" in item.type else np.float32
        if item.name == "timestep":
            feeds[item.name] = np.array(timestep, dtype=dtype)
            continue
        dims = [d if isinstance(d, int) else 0 for d in item.shape]
        if item.name == "sample":
            dims = [1, dims[1], 8, 8]
        elif item.name == "encoder_hidden_states":
            dims = [1, 77, dims[2]]
        else:
            dims = [1, *dims[1:]]
        feeds[item.name] = rng.standard_normal(dims).astype(dtype)
    return feeds


@pytest.mark.parametrize("name", UNETS)
def test_every_committed_unet_output_changes_with_the_timestep(name: str) -> None:
    session = ort.InferenceSession(
        str(TINY / name / "unet" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    early, late = (
        session.run(None, _feeds(session, t))[0].astype(np.float32) for t in (900.0, 100.0)
    )
    change = relative_change(early, late)
    assert change > MEASURABLE, f"{name}: the timestep moves the output by only {change:.2e}"
