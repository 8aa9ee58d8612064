"""Shared helpers of the family and adapter tests: noise, pixel diffs, torch reference pipelines."""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .conftest import TINY

ROOT = TINY.parents[1]
ADAPTERS = TINY / "adapters"
LORAS = ADAPTERS / "loras"
EMBEDDINGS = ADAPTERS / "embeddings"
MAX_PIXEL_DIFF = 2  # out of 255
LATENT_TOLERANCE = 1e-4  # of the largest value
SIZE = 64


def noise(seed: int = 7) -> np.ndarray:
    """Starting latents for one 64x64 image."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((1, 4, SIZE // 8, SIZE // 8)).astype(np.float32)


def max_diff(reference: np.ndarray, ours: Image.Image) -> int:
    """Largest per-pixel difference in 0..255 steps; refuses a flat reference."""
    ref = (reference * 255).round().astype(np.int32)
    assert ref.std() > 10, "the reference image is flat; the comparison would prove nothing"
    return int(np.abs(ref - np.asarray(ours, dtype=np.int32)).max())


def latents_close(ours: np.ndarray, reference: Any) -> bool:
    """Whether final latents agree to 1e-4 of the reference's largest value everywhere."""
    theirs = np.asarray(reference)
    assert np.abs(theirs).max() > 0.1, "the reference latents are ~0; they would prove nothing"
    return bool(np.abs(ours - theirs).max() <= LATENT_TOLERANCE * np.abs(theirs).max())


def _builder() -> Any:
    sys.path.insert(0, str(ROOT / "models"))
    import build_tiny

    return build_tiny


def torch_pipeline(name: str) -> Any:
    """The seeded diffusers (torch) pipeline the committed tiny ONNX folder ``name`` came from."""
    build_tiny = _builder()
    work = Path(tempfile.mkdtemp(prefix="impasto-test-"))
    # The builder's scratch (its tokenizer files); read into memory by the time it returns.
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    if name in build_tiny.TINY:
        return build_tiny.build_pipeline(build_tiny.TINY[name], work, full=False)
    return build_tiny.build_family_pipeline(build_tiny.FAMILIES[name], work)
