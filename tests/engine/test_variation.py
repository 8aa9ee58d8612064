"""AUTOMATIC1111's variation seed: the starting noise moved toward another seed's noise."""

from __future__ import annotations

import numpy as np
import pytest

from impasto.engine import InvalidRequestError, StableDiffusion
from impasto.engine.noise import BatchNoise, Variation, slerp
from impasto.engine.types import HiresParams

from .conftest import small


def test_slerp_runs_from_one_noise_to_the_other_keeping_its_length() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 4, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(slerp(0.0, a, b), a, atol=1e-6)
    np.testing.assert_allclose(slerp(1.0, a, b), b, atol=1e-6)
    halfway = slerp(0.5, a, b)
    # A straight mix of two independent noises is about 1/sqrt(2) as long; slerp is not.
    assert np.linalg.norm(halfway) == pytest.approx(np.linalg.norm(a), rel=0.05)
    assert np.linalg.norm((a + b) / 2) < 0.8 * np.linalg.norm(a)
    # The same direction from both ends: a unit vector between them.
    cos = lambda x, y: float(x.ravel() @ y.ravel() / np.linalg.norm(x) / np.linalg.norm(y))  # noqa: E731
    assert cos(halfway, a) == pytest.approx(cos(halfway, b), abs=0.02)


def test_only_the_first_draw_varies_and_image_i_moves_toward_subseed_plus_i() -> None:
    shape = (2, 4, 8, 8)
    plain, varied = BatchNoise(5, 2), BatchNoise(5, 2, Variation(40, 1.0))
    first = varied(shape)
    np.testing.assert_allclose(first[0], BatchNoise(40, 1)((1, 4, 8, 8))[0], atol=1e-6)
    np.testing.assert_allclose(first[1], BatchNoise(41, 1)((1, 4, 8, 8))[0], atol=1e-6)
    plain(shape)
    # What an ancestral sampler draws next comes from the seed's generators, as in A1111.
    np.testing.assert_array_equal(varied(shape), plain(shape))


def _latents(pipe: StableDiffusion, **fields: object) -> np.ndarray:
    return pipe.denoise(small(**{"seed": 5, **fields})).latents


def test_strength_0_is_the_seed_and_1_is_the_subseeds_start(pipe: StableDiffusion) -> None:
    seed = _latents(pipe)
    np.testing.assert_array_equal(_latents(pipe, subseed=99, subseed_strength=0.0), seed)
    # Euler is deterministic after its start, so strength 1 is the subseed's picture.
    np.testing.assert_allclose(
        _latents(pipe, subseed=99, subseed_strength=1.0), _latents(pipe, seed=99), atol=1e-5
    )
    between = _latents(pipe, subseed=99, subseed_strength=0.3)
    assert np.abs(between - seed).max() > 1e-3
    # Near 0 it is near the seed's picture: a variation, not another picture.
    assert np.abs(between - seed).mean() < np.abs(_latents(pipe, seed=99) - seed).mean()
    with pytest.raises(InvalidRequestError) as bad:
        pipe.denoise(small(subseed=1, subseed_strength=1.5))
    assert bad.value.field == "subseed_strength"


def test_a_hires_pass_varies_its_starting_noise_too(
    pipe: StableDiffusion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A1111 draws the hires pass's starting noise with the variation seed as well."""
    blended: list[tuple[int, ...]] = []
    blend = Variation.blend

    def spy(self: Variation, noise: np.ndarray) -> np.ndarray:
        blended.append(noise.shape)
        return blend(self, noise)

    monkeypatch.setattr(Variation, "blend", spy)
    hires = HiresParams(width=128, height=128, steps=2, strength=0.5)
    params = small(seed=5, subseed=99, subseed_strength=0.4, hires=hires)
    varied = pipe.generate(params)
    assert blended == [(1, 4, 8, 8), (1, 4, 16, 16)]
    blended.clear()
    plain = pipe.generate(small(seed=5, hires=hires))
    assert blended == []
    pixels = [np.asarray(result[0].image, np.int16) for result in (varied, plain)]
    assert np.abs(pixels[0] - pixels[1]).max() > 0


def test_eta_reaches_the_sampler(pipe: StableDiffusion) -> None:
    """Euler a at eta 0 adds no noise: Euler's picture; DDIM's eta adds it (A1111's eta)."""
    euler = _latents(pipe, sampler="euler")
    np.testing.assert_allclose(_latents(pipe, sampler="euler_a", eta=0.0), euler, atol=1e-5)
    assert np.abs(_latents(pipe, sampler="euler_a") - euler).max() > 1e-3
    ddim = _latents(pipe, sampler="ddim")
    np.testing.assert_array_equal(_latents(pipe, sampler="ddim", eta=0.0), ddim)
    assert np.abs(_latents(pipe, sampler="ddim", eta=0.7) - ddim).max() > 1e-3
    with pytest.raises(InvalidRequestError) as bad:
        pipe.denoise(small(sampler="ddim", eta=1.5))
    assert bad.value.field == "eta"


def test_a_resized_seed_lays_the_seeds_noise_at_that_size_over_the_centre() -> None:
    """A1111's "Resize seed from": the starting noise is the seed's at the other size, centred
    (cropped to the centre when larger), the rest the seed's noise at the real size."""
    shape = (1, 4, 8, 8)
    plain = BatchNoise(5, 1)(shape)[0]
    small = BatchNoise(5, 1)((1, 4, 4, 4))[0]
    resized = BatchNoise(5, 1, resize_from=(4, 4))(shape)[0]
    np.testing.assert_array_equal(resized[:, 2:6, 2:6], small)
    outside = np.ones((8, 8), dtype=bool)
    outside[2:6, 2:6] = False
    np.testing.assert_array_equal(resized[:, outside], plain[:, outside])
    large = BatchNoise(5, 1)((1, 4, 12, 10))[0]
    np.testing.assert_array_equal(
        BatchNoise(5, 1, resize_from=(12, 10))(shape)[0], large[:, 2:10, 1:9]
    )
    # The same size changes nothing; a variation moves the seed's part.
    np.testing.assert_array_equal(BatchNoise(5, 1, resize_from=(8, 8))(shape)[0], plain)
    varied = BatchNoise(5, 1, Variation(40, 1.0), resize_from=(4, 4))(shape)[0]
    np.testing.assert_allclose(varied[:, 2:6, 2:6], BatchNoise(40, 1)((1, 4, 4, 4))[0], atol=1e-6)


def test_the_pipeline_starts_from_the_resized_seed(pipe: StableDiffusion) -> None:
    plain = _latents(pipe)
    np.testing.assert_array_equal(_latents(pipe, seed_resize_from=(64, 64)), plain)
    assert np.abs(_latents(pipe, seed_resize_from=(32, 48)) - plain).max() > 1e-3
    with pytest.raises(InvalidRequestError) as bad:
        pipe.denoise(small(seed_resize_from=(0, 64)))
    assert bad.value.field == "seed_resize_from_width"
