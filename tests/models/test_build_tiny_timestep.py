"""The tiny UNet the build script makes depends on the timestep (it must, for tests to see one).

The committed ONNX files predate this script change (norm_num_groups 32 -> 8) and are rebuilt
separately; this checks the script, in torch, without rebuilding them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

MODELS = Path(__file__).resolve().parents[2] / "models"


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
