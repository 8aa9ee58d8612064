"""The CUDA normal generator in numpy (A1111's "RNG: NV") against torch's own CUDA output for
two seeds: ``torch.manual_seed(0); torch.randn(3, 4, device="cuda")``, as A1111's
``rng_philox`` documents it, and ``torch.manual_seed(42); torch.randn(5, device="cuda")``, the
values PyTorch users on NVIDIA cards see. No GPU is needed: these are the published values."""

from __future__ import annotations

import numpy as np
import pytest

from impasto.engine.noise import BatchNoise
from impasto.engine.philox_rng import PhiloxGenerator

CUDA_SEED_0 = [
    [-0.92466259, -0.42534415, -2.6438457, 0.14518388],
    [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
    [-1.07454231, -0.36314407, -1.67105067, 2.26550497],
]
CUDA_SEED_42 = [0.1940, 2.1614, -0.1721, 0.8491, -1.9244]


def test_the_first_draw_is_torchs_cuda_randn() -> None:
    np.testing.assert_allclose(PhiloxGenerator(0).standard_normal((3, 4)), CUDA_SEED_0, atol=1e-6)
    np.testing.assert_allclose(PhiloxGenerator(42).standard_normal((5,)), CUDA_SEED_42, atol=1e-4)


def test_draws_move_on_and_seeds_use_all_64_bits() -> None:
    generator = PhiloxGenerator(7)
    first, second = generator.standard_normal((64,)), generator.standard_normal((64,))
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(PhiloxGenerator(7).standard_normal((64,)), first)
    high = PhiloxGenerator(7 + 2**32).standard_normal((64,))
    assert not np.allclose(high, first)  # the seed's high word is the key's second word
    assert abs(float(np.mean(first))) < 0.5 and 0.5 < float(np.std(first)) < 1.5


@pytest.mark.parametrize("shape", [(2, 4, 8, 8)])
def test_a_batch_seeds_image_i_with_seed_plus_i(shape: tuple[int, ...]) -> None:
    noise = BatchNoise(5, 2, rng="nv")(shape)
    for i in range(2):
        expected = PhiloxGenerator(5 + i).standard_normal(shape[1:], np.float32)
        np.testing.assert_array_equal(noise[i], expected)
