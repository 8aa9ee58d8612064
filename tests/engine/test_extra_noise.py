"""A1111's "Extra noise" (img2img_extra_noise) at the start of an img2img pass, for the samplers
whose latents are not sigma-scaled: A1111's timestep samplers add ``noise * extra *
sqrt(alpha_cumprod)`` (sd_samplers_timesteps), the same extra noise in their scale. The
k-diffusion samplers' start is compared in test_pipeline_kdiffusion.py."""

from __future__ import annotations

import numpy as np
import pytest

from impasto.engine.pipelines.img2img import noised_start
from impasto.engine.schedulers import SchedulerConfig, create_scheduler
from impasto.engine.schedulers.sigmas import alphas_cumprod

SHAPE = (1, 4, 8, 8)


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m", "unipc"])
def test_extra_noise_is_a1111s_on_alpha_scaled_latents(sampler: str) -> None:
    config = SchedulerConfig()
    sched = create_scheduler(sampler, config)
    sched.set_timesteps(10)
    rng = np.random.default_rng(3)
    init = rng.standard_normal(SHAPE).astype(np.float32)
    noise = rng.standard_normal(SHAPE).astype(np.float32)
    plain, start = noised_start(sched, init, noise, 10, 0.6, multiplier=0.8)
    extra, again = noised_start(sched, init, noise, 10, 0.6, multiplier=0.8, extra=0.4)
    assert start == again
    alpha = alphas_cumprod(config)[int(sched.timesteps[start])]
    np.testing.assert_allclose(extra - plain, 0.4 * 0.8 * noise * np.sqrt(alpha), atol=1e-5)


def test_no_extra_noise_changes_nothing() -> None:
    sched = create_scheduler("euler", SchedulerConfig())
    sched.set_timesteps(10)
    init = np.ones(SHAPE, dtype=np.float32)
    noise = np.full(SHAPE, 0.5, dtype=np.float32)
    plain, _ = noised_start(sched, init, noise, 10, 0.6)
    same, _ = noised_start(sched, init, noise, 10, 0.6, extra=0.0)
    np.testing.assert_array_equal(plain, same)
    moved, _ = noised_start(sched, init, noise, 10, 0.6, extra=0.25)
    np.testing.assert_allclose(moved - plain, 0.25 * noise, atol=1e-6)  # sigma-scaled latents
