"""The tiny UNet the build script makes should depend on the timestep, for tests to see one.

It does not yet: with norm_num_groups 32 on 32 channels, GroupNorm removes the per-channel
time embedding. The fix is norm_num_groups=8 in ``make_unet``, but the committed ONNX models
and every torch-reference test (test_lora, test_embeddings) must then be rebuilt together, so
this stays a strict xfail until models/tiny is regenerated with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.xfail(
    strict=True, reason="models/tiny not rebuilt yet: needs norm_num_groups=8 in make_unet"
)
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
        early, late = (unet(sample, t, hidden).sample for t in (900.0, 100.0))
    change = float((early - late).abs().max() / early.abs().max())
    assert change > 1e-2, f"the timestep moves the output by only {change:.2e}"
