"""torch's CPU normal generator, reproduced in numpy: the same noise as ``torch.randn`` for a
seed (AUTOMATIC1111's "RNG: CPU", ComfyUI's noise), and the pipeline's use of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from impasto.engine import StableDiffusion
from impasto.engine.noise import BatchNoise, Variation
from impasto.engine.torch_rng import TorchCpuGenerator

from .conftest import small

# torch takes log, sin and cos in float32 vector approximations; ours are exact.
ATOL = 5e-6


# ComfyUI's seeds are 64-bit (156680208700286 is one it drew); torch seeds its generator with
# the low 32 bits, and so does ours.
@pytest.mark.parametrize("seed", [0, 1234, 2**32 - 1, 2**32 + 5, 156680208700286, 2**63 - 1])
@pytest.mark.parametrize("shape", [(16,), (17,), (4, 8, 8), (4, 64, 64), (1, 4, 13, 9)])
def test_the_same_normals_as_torch_randn_and_the_next_ones_too(
    seed: int, shape: tuple[int, ...]
) -> None:
    theirs = torch.Generator().manual_seed(seed)
    ours = TorchCpuGenerator(seed)
    for _ in range(2):  # the stream continues as torch's does
        expected = torch.randn(shape, generator=theirs).numpy()
        got = ours.standard_normal(shape)
        assert got.dtype == np.float32 and got.shape == shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


def test_fewer_than_sixteen_values_are_refused() -> None:
    with pytest.raises(ValueError, match="16"):
        TorchCpuGenerator(1).standard_normal((3, 4))


def test_batch_noise_is_a1111s_cpu_noise_per_image() -> None:
    """Image i from seed + i, variation toward subseed + i: A1111's ImageRNG on the CPU."""
    shape = (2, 4, 8, 8)
    noise = BatchNoise(7, 2, rng="cpu")
    first = noise(shape)
    for i in range(2):
        generator = torch.Generator().manual_seed(7 + i)
        expected = torch.randn(shape[1:], generator=generator).numpy()
        np.testing.assert_allclose(first[i], expected, atol=ATOL)
    # What an ancestral sampler draws next continues each image's generator.
    again = noise(shape)
    generator = torch.Generator().manual_seed(7)
    torch.randn(shape[1:], generator=generator)
    np.testing.assert_allclose(again[0], torch.randn(shape[1:], generator=generator), atol=ATOL)
    varied = BatchNoise(7, 1, Variation(40, 1.0, "cpu"), rng="cpu")((1, *shape[1:]))
    subseed = torch.randn(shape[1:], generator=torch.Generator().manual_seed(40)).numpy()
    np.testing.assert_allclose(varied[0], subseed, atol=ATOL)


def test_a_noise_seed_delta_reseeds_after_each_start_as_a1111s_ensd() -> None:
    """A1111's ImageRNG with "Eta noise seed delta": the start noise is the seed's; what the
    sampler draws after it comes from seed + i + delta, afresh after each start (a hires pass's
    start too)."""
    shape = (2, 4, 8, 8)
    noise = BatchNoise(7, 2, rng="cpu", seed_delta=31337)
    np.testing.assert_array_equal(noise(shape), BatchNoise(7, 2, rng="cpu")(shape))
    steps = [noise(shape), noise(shape)]
    for i in range(2):
        generator = torch.Generator().manual_seed(7 + i + 31337)
        for drawn in steps:
            expected = torch.randn(shape[1:], generator=generator).numpy()
            np.testing.assert_allclose(drawn[i], expected, atol=ATOL)
    noise.restart()  # a hires pass: A1111's new ImageRNG
    np.testing.assert_array_equal(noise(shape), BatchNoise(7, 2, rng="cpu")(shape))
    generator = torch.Generator().manual_seed(7 + 31337)
    np.testing.assert_allclose(
        noise(shape)[0], torch.randn(shape[1:], generator=generator), atol=ATOL
    )
    plain = BatchNoise(7, 2, rng="cpu")
    plain(shape)
    assert not np.allclose(plain(shape), steps[0])


def test_image_seeds_wrap_past_the_top_of_the_seed_range() -> None:
    """seed + i stays a seed a request may name (int64), so a batch from the last seed reads
    back: its second image is seed 0, with seed 0's noise."""
    top = 2**63 - 1
    noise = BatchNoise(top, 2)
    assert noise.seeds == [top, 0]
    plain = BatchNoise(0, 1)((1, 4, 8, 8))
    np.testing.assert_array_equal(noise((2, 4, 8, 8))[1], plain[0])
    # A variation seed wraps the same way: image 1 moves toward subseed 0's noise.
    varied = BatchNoise(5, 2, Variation(top, 1.0))((2, 4, 8, 8))
    np.testing.assert_allclose(varied[1], plain[0], atol=1e-6)


def test_the_pipeline_starts_from_the_chosen_noise(pipe: StableDiffusion) -> None:
    plain = pipe.denoise(small(seed=5)).latents
    cpu = pipe.denoise(small(seed=5, rng="cpu")).latents
    assert np.abs(cpu - plain).max() > 1e-3
    # Starting from torch's noise given as latents is the same run.
    start = torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(5)).numpy()[None]
    given = pipe.denoise(small(seed=5), latents=start).latents  # Euler: no noise after the start
    np.testing.assert_allclose(cpu, given, atol=1e-4)
