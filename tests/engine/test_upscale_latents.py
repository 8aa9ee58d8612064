"""The numpy latent upscale modes equal torch's ``interpolate`` (A1111's latent modes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from impasto.engine.upscale_latents import LATENT_MODES, upscale_latents


@pytest.mark.parametrize("upscaler", sorted(LATENT_MODES))
@pytest.mark.parametrize(
    ("size", "target"), [((8, 8), (16, 16)), ((8, 6), (12, 15)), ((5, 7), (13, 9))]
)
def test_latent_modes_equal_torch_interpolate(
    upscaler: str, size: tuple[int, int], target: tuple[int, int]
) -> None:
    latents = np.random.default_rng(1).standard_normal((2, 4, *size)).astype(np.float32)
    mode, antialias = LATENT_MODES[upscaler]
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(latents), size=target, mode=mode, antialias=antialias
    ).numpy()
    ours = upscale_latents(latents, *target, upscaler)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)


def test_the_request_schema_lists_the_engines_upscalers() -> None:
    from typing import get_args

    from impasto.engine.upscale_latents import UPSCALERS
    from impasto.wire import UpscalerName

    assert get_args(UpscalerName) == UPSCALERS
