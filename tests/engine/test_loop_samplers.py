"""The k-diffusion style samplers match k-diffusion's ``sampling.py`` on the same noise.

Both sides run the same fake eps/v UNet: ours through the pipeline's ``Scheduler`` protocol
(scaled input, timesteps from the dry run), k-diffusion's through its own DDPM denoiser
wrapper, so the sigma -> timestep mapping is compared too.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch

from impasto.engine.schedulers import (
    Churn,
    SchedulerConfig,
    create_scheduler,
    sampler_schedules,
)
from impasto.engine.schedulers.loop import LoopSampler
from impasto.engine.schedulers.restart import restart_path

from . import kdiffusion_oracle
from .scheduler_oracle import NoiseQueue, fake_unet

SHAPE = (1, 4, 8, 8)
TOLERANCE = 1e-4
CONFIGS = {
    "eps-leading": SchedulerConfig(),
    "v-trailing": SchedulerConfig(prediction_type="v_prediction", timestep_spacing="trailing"),
}
REFERENCES = {
    "dpm_2": "sample_dpm_2",
    "dpm_2_a": "sample_dpm_2_ancestral",
    "dpmpp_2s_a": "sample_dpmpp_2s_ancestral",
    "dpmpp_sde": "sample_dpmpp_sde",
    "dpmpp_3m_sde": "sample_dpmpp_3m_sde",
    "dpm_fast": "sample_dpm_fast",
    "dpm_adaptive": "sample_dpm_adaptive",
    "restart": "sample_heun",  # under 20 steps Restart makes no restarts: Heun exactly
}
# The samplers that take A1111's eta, and k-diffusion's function for each.
ETA_REFERENCES = {
    "euler_a": "sample_euler_ancestral",
    "dpm_2_a": "sample_dpm_2_ancestral",
    "dpmpp_2s_a": "sample_dpmpp_2s_ancestral",
    "dpmpp_sde": "sample_dpmpp_sde",
    "dpmpp_3m_sde": "sample_dpmpp_3m_sde",
}
STOCHASTIC = {"dpm_2_a", "dpmpp_2s_a", "dpmpp_sde", "dpmpp_3m_sde", "dpm_fast", "dpm_adaptive"}


def run_ours(
    sampler_id: str,
    config: SchedulerConfig,
    schedule: str,
    steps: int,
    queue: NoiseQueue,
    start: int,
    eta: float | None = None,
    churn: Churn | None = None,
) -> tuple[np.ndarray, LoopSampler]:
    """The pipeline's loop: txt2img from noise, or img2img from schedule step ``start``."""
    sched = create_scheduler(sampler_id, config, schedule, eta, churn)
    assert isinstance(sched, LoopSampler)
    sched.set_timesteps(steps)
    first = queue(SHAPE)
    index = sched.start_at(start)
    if start == 0:
        latents = first * np.float32(sched.init_noise_sigma)
    else:
        latents = sched.add_noise(init_latents(), first, index).astype(np.float32)
    i = index
    while i < len(sched.timesteps):  # re-read: DPM adaptive adds its calls as it goes
        latents = sched.prepare(latents, i, queue)
        model_input = sched.scale_model_input(latents, i)
        latents = sched.step(fake_unet(model_input, sched.timesteps[i]), i, latents, queue)
        i += 1
    return latents, sched


def run_reference(
    name: str,
    config: SchedulerConfig,
    sigmas: np.ndarray,
    queue: NoiseQueue,
    start: int,
    eta: float = 1.0,
    churn: dict[str, float] | None = None,
) -> np.ndarray:
    """k-diffusion's sampler ``name`` over ``sigmas[start:]`` (``eta`` where it takes one;
    ``churn``: its ``s_churn``, ``s_tmin``, ``s_tmax``, ``s_noise``, its noise from ``queue``)."""
    sampling, _ = kdiffusion_oracle.load()
    model = kdiffusion_oracle.denoiser(config)
    tail = torch.from_numpy(sigmas[start:].astype(np.float32))
    first = torch.from_numpy(queue(SHAPE))
    x = first * tail[0] if start == 0 else torch.from_numpy(init_latents()) + first * tail[0]
    extra: dict[str, Any] = {"disable": True}
    if name not in ("sample_dpm_2", "sample_heun", "sample_euler"):
        extra["noise_sampler"] = kdiffusion_oracle.noise_sampler(queue)
    if name == "sample_dpm_fast":  # as A1111 calls it: the non-zero range
        with torch.no_grad():
            return sampling.sample_dpm_fast(
                model, x, tail[-2], tail[0], len(tail) - 1, eta=eta, **extra
            ).numpy()
    if name == "sample_dpm_adaptive":  # in float64, as ours: its many calls amplify rounding
        with torch.no_grad():
            return (
                sampling.sample_dpm_adaptive(
                    model, x.double(), tail[-2].double(), tail[0].double(), eta=eta, **extra
                )
                .float()
                .numpy()
            )
    if name in ETA_REFERENCES.values():
        extra["eta"] = eta
    with torch.no_grad(), kdiffusion_oracle.randn_like_from(queue):
        return getattr(sampling, name)(model, x, tail, **extra, **(churn or {})).numpy()


def init_latents() -> np.ndarray:
    return np.random.default_rng(7).standard_normal(SHAPE).astype(np.float32)


@pytest.mark.parametrize("sampler_id", list(REFERENCES))
@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("start", [0, 5])
def test_matches_k_diffusion(sampler_id: str, config_name: str, start: int) -> None:
    config = CONFIGS[config_name]
    for schedule in sampler_schedules(sampler_id):
        ours, sched = run_ours(sampler_id, config, schedule, 12, NoiseQueue(SHAPE, 3), start)
        theirs = run_reference(
            REFERENCES[sampler_id], config, sched.step_sigmas, NoiseQueue(SHAPE, 3), start
        )
        assert np.isfinite(ours).all() and np.abs(ours).max() > 1e-3
        # DPM adaptive makes ~5x the calls and its float32 model outputs add up: it is held
        # to 1e-5 of the largest value (here ~2e-4) instead.
        atol = 1e-5 * np.abs(theirs).max() if sampler_id == "dpm_adaptive" else TOLERANCE
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol, err_msg=schedule)


@pytest.mark.parametrize("sampler_id", sorted(STOCHASTIC))
def test_noise_changes_the_result(sampler_id: str) -> None:
    config = CONFIGS["eps-leading"]
    a, _ = run_ours(sampler_id, config, "default", 8, NoiseQueue(SHAPE, 3), 0)
    queue = NoiseQueue(SHAPE, 3)
    queue.items[1:] = NoiseQueue(SHAPE, 4).items[1:]
    b, _ = run_ours(sampler_id, config, "default", 8, queue, 0)
    assert not np.allclose(a, b, atol=1e-3)


def test_restart_path_follows_a1111() -> None:
    """20 steps: 11 Karras steps plus one 10-point restart from sigma ~0.1 up to ~2."""
    sched = create_scheduler("restart", SchedulerConfig())
    sched.set_timesteps(20)
    sigmas = sched.step_sigmas
    path = restart_path(sigmas)
    rises = np.flatnonzero(np.diff(path) > 0)
    assert len(rises) == 1
    low, high = path[rises[0]], path[rises[0] + 1]
    assert abs(low - 0.1) < 0.1 and abs(high - 2.0) < 1.0
    assert len(path) == 20 - 9 + 1 + 10
    assert path[0] == pytest.approx(sigmas[0]) and path[-1] == 0.0
    sched36 = create_scheduler("restart", SchedulerConfig())
    sched36.set_timesteps(40)
    assert len(np.flatnonzero(np.diff(sched36.path_sigmas) > 0)) == 2  # 36+ steps restart twice


def test_restart_with_restarts_matches_heun_segments() -> None:
    """From 20 steps: k-diffusion's Heun down each falling run, A1111's noise at each rise."""
    config = CONFIGS["eps-leading"]
    ours, sched = run_ours("restart", config, "default", 24, NoiseQueue(SHAPE, 3), 0)
    sampling, _ = kdiffusion_oracle.load()
    model = kdiffusion_oracle.denoiser(config)
    queue = NoiseQueue(SHAPE, 3)
    path = sched.path_sigmas
    x = torch.from_numpy(queue(SHAPE)) * float(path[0])
    cuts = [0, *(np.flatnonzero(np.diff(path) > 0) + 1), len(path)]
    for a, b in itertools.pairwise(cuts):
        if a > 0:
            rise = (float(path[a]) ** 2 - float(path[a - 1]) ** 2) ** 0.5
            x = x + torch.from_numpy(queue(SHAPE)) * rise
        segment = torch.from_numpy(path[a:b].astype(np.float32))
        with torch.no_grad():
            x = sampling.sample_heun(model, x, segment, disable=True)
    np.testing.assert_allclose(ours, x.numpy(), rtol=0, atol=TOLERANCE)


def test_dpm_adaptive_makes_the_calls_k_diffusion_makes() -> None:
    config = CONFIGS["eps-leading"]
    ours, sched = run_ours("dpm_adaptive", config, "default", 12, NoiseQueue(SHAPE, 3), 0)
    sampling, _ = kdiffusion_oracle.load()
    model = kdiffusion_oracle.denoiser(config)
    tail = torch.from_numpy(sched.step_sigmas.astype(np.float32))
    x = torch.from_numpy(NoiseQueue(SHAPE, 3)(SHAPE)) * tail[0]
    queue = NoiseQueue(SHAPE, 3)
    queue.used = 1
    with torch.no_grad():
        _, info = sampling.sample_dpm_adaptive(
            model,
            x,
            tail[-2],
            tail[0],
            eta=1.0,
            disable=True,
            return_info=True,
            noise_sampler=kdiffusion_oracle.noise_sampler(queue),
        )
    assert len(sched.timesteps) == info["nfe"] > 3
    assert info["n_reject"] > 0  # the error control was exercised
    assert sched.sigmas[-1] == 0 and np.isfinite(ours).all()


@pytest.mark.parametrize("sampler_id", [s for s in REFERENCES if s != "dpm_adaptive"])
def test_calls_add_up_and_timesteps_are_the_schedules(sampler_id: str) -> None:
    sched = create_scheduler(sampler_id, SchedulerConfig())
    sched.set_timesteps(10)
    assert isinstance(sched, LoopSampler)
    assert sched.position_calls[-1] == len(sched.timesteps)
    euler = create_scheduler("euler", SchedulerConfig())
    euler.set_timesteps(10)
    # The schedule's own sigmas are called at the schedule's own (integer) timesteps.
    assert sched.timesteps[0] == euler.timesteps[0]
    assert sched.init_noise_sigma == pytest.approx(float(euler.sigmas[0]))


def test_refiner_switch_inside_a_step_waits_for_the_next_step() -> None:
    sched = create_scheduler("dpm_2", SchedulerConfig())
    sched.set_timesteps(6)
    latents = NoiseQueue(SHAPE, 1)(SHAPE)
    out = sched.step(fake_unet(latents, sched.timesteps[1]), 1, latents, NoiseQueue(SHAPE, 2))
    assert out is latents
    moved = sched.step(fake_unet(latents, sched.timesteps[2]), 2, latents, NoiseQueue(SHAPE, 2))
    assert not np.allclose(moved, latents)


@pytest.mark.parametrize("eta", [0.0, 0.5])
@pytest.mark.parametrize("sampler_id", [*ETA_REFERENCES, "dpm_fast", "dpm_adaptive"])
def test_eta_matches_k_diffusion(sampler_id: str, eta: float) -> None:
    """A1111's ``eta`` scales the fresh noise as k-diffusion's ``eta`` argument does. (Trailing
    spacing: diffusers' Euler a then starts from the top sigma, as k-diffusion does.)"""
    config = CONFIGS["v-trailing"]
    ours, sched = run_ours(sampler_id, config, "default", 12, NoiseQueue(SHAPE, 3), 0, eta)
    name = ETA_REFERENCES.get(sampler_id) or REFERENCES[sampler_id]
    theirs = run_reference(name, config, sched.step_sigmas, NoiseQueue(SHAPE, 3), 0, eta)
    atol = 1e-5 * np.abs(theirs).max() if sampler_id == "dpm_adaptive" else TOLERANCE
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol)
    plain, _ = run_ours(sampler_id, config, "default", 12, NoiseQueue(SHAPE, 3), 0)
    assert np.abs(ours - plain).max() > 1e-3  # eta changed the picture


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
def test_dpmpp_2m_sde_eta_matches_k_diffusion(eta: float, solver_type: str) -> None:
    """DPM++ 2M SDE (diffusers' stochastic DPM-Solver++, in VP variables) with A1111's eta is
    k-diffusion's ``sample_dpmpp_2m_sde`` with Gaussian noise."""
    config = CONFIGS["eps-leading"]
    sampler_id = "dpmpp_2m_sde" if solver_type == "midpoint" else "dpmpp_2m_sde_heun"
    sched = create_scheduler(sampler_id, config, "default", eta)
    sched.set_timesteps(12)
    queue = NoiseQueue(SHAPE, 3)
    latents = queue(SHAPE) * np.float32(sched.init_noise_sigma)
    for i in range(len(sched.timesteps)):
        model_input = sched.scale_model_input(latents, i)
        latents = sched.step(fake_unet(model_input, sched.timesteps[i]), i, latents, queue)
    sigmas = np.asarray(sched.sigmas, dtype=np.float64)  # type: ignore[attr-defined]
    sampling, _ = kdiffusion_oracle.load()
    reference = NoiseQueue(SHAPE, 3)
    alpha_0 = 1 / (sigmas[0] ** 2 + 1) ** 0.5  # diffusers' unit noise, in k-diffusion's terms
    x = torch.from_numpy(reference(SHAPE)) / float(alpha_0)
    with torch.no_grad():
        theirs = sampling.sample_dpmpp_2m_sde(
            kdiffusion_oracle.denoiser(config),
            x,
            torch.from_numpy(sigmas.astype(np.float32)),
            eta=eta,
            solver_type=solver_type,
            noise_sampler=kdiffusion_oracle.noise_sampler(reference),
            disable=True,
        ).numpy()
    np.testing.assert_allclose(latents, theirs, rtol=0, atol=TOLERANCE)


def test_eta_is_refused_by_samplers_that_add_no_noise() -> None:
    with pytest.raises(ValueError, match="no eta"):
        create_scheduler("euler", SchedulerConfig(), "default", 0.5)
    assert create_scheduler("ddim", SchedulerConfig()).eta == 0.0  # type: ignore[attr-defined]
    assert create_scheduler("euler_a", SchedulerConfig()).eta == 1.0  # type: ignore[attr-defined]


CHURN_REFERENCES = {"euler": "sample_euler", "heun": "sample_heun", "dpm_2": "sample_dpm_2"}
CHURNS = {
    "everywhere": Churn(2.0),
    # gamma capped at sqrt(2) - 1; churn only between sigma 0.5 and 5, its noise scaled.
    "banded": Churn(40.0, tmin=0.5, tmax=5.0, noise=0.9),
}


@pytest.mark.parametrize("churn_name", list(CHURNS))
@pytest.mark.parametrize("start", [0, 5])
@pytest.mark.parametrize("sampler_id", list(CHURN_REFERENCES))
def test_sigma_churn_matches_k_diffusion(sampler_id: str, start: int, churn_name: str) -> None:
    """k-diffusion's ``s_churn``/``s_tmin``/``s_tmax``/``s_noise``: spread over the run's own
    steps (an img2img tail's, as A1111 passes it), one draw per step whether used or not.
    (Trailing spacing: diffusers' Euler and Heun then start from the top sigma too.)"""
    config = CONFIGS["v-trailing"]
    churn = CHURNS[churn_name]
    ours, sched = run_ours(
        sampler_id, config, "karras", 12, NoiseQueue(SHAPE, 3), start, None, churn
    )
    theirs = run_reference(
        CHURN_REFERENCES[sampler_id],
        config,
        sched.step_sigmas,
        NoiseQueue(SHAPE, 3),
        start,
        churn={
            "s_churn": churn.amount,
            "s_tmin": churn.tmin,
            "s_tmax": churn.tmax,
            "s_noise": churn.noise,
        },
    )
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOLERANCE)
    plain, _ = run_ours(sampler_id, config, "karras", 12, NoiseQueue(SHAPE, 3), start)
    assert np.abs(ours - plain).max() > 1e-2  # churn changed the picture
    assert sched.init_noise_sigma == pytest.approx(float(sched.step_sigmas[0]))


def test_churn_is_refused_by_samplers_without_it() -> None:
    with pytest.raises(ValueError, match="no sigma churn"):
        create_scheduler("dpmpp_2m", SchedulerConfig(), "default", None, Churn(1.0))
    assert create_scheduler("heun", SchedulerConfig(), "default", None, Churn(1.0)).churn


@pytest.mark.parametrize("sampler_id", list(CHURN_REFERENCES))
def test_a_refiner_resuming_a_churned_run_does_not_churn_its_first_step_again(
    sampler_id: str,
) -> None:
    """The base runs the first calls, a second sampler (the refiner's) the rest: together they
    make the single run, because ``resume_at`` keeps the second from raising the noise again."""
    config = CONFIGS["v-trailing"]
    churn = Churn(3.0)
    whole, _ = run_ours(sampler_id, config, "default", 8, NoiseQueue(SHAPE, 3), 0, None, churn)

    def split(resume: bool) -> np.ndarray:
        queue = NoiseQueue(SHAPE, 3)
        base = create_scheduler(sampler_id, config, "default", None, churn)
        second = create_scheduler(sampler_id, config, "default", None, churn)
        base.set_timesteps(8)
        second.set_timesteps(8)
        switch = int(base.position_calls[4])  # type: ignore[attr-defined]
        latents = queue(SHAPE) * np.float32(base.init_noise_sigma)
        if resume:
            second.resume_at(switch)
        for i in range(len(base.timesteps)):
            sched = base if i < switch else second
            latents = sched.prepare(latents, i, queue)
            model_input = sched.scale_model_input(latents, i)
            latents = sched.step(fake_unet(model_input, sched.timesteps[i]), i, latents, queue)
        return latents

    np.testing.assert_allclose(split(resume=True), whole, rtol=0, atol=1e-6)
    assert np.abs(split(resume=False) - whole).max() > 1e-2


def test_img2img_starts_at_the_schedules_sigma_and_inpainting_blends_at_the_churned_one() -> None:
    """``add_noise`` before a churned run starts gives the tail's first sigma (the churn adds
    the rest); during the run, the sigma the next call is made at (the latents already have
    its churn)."""
    sched = create_scheduler("euler", CONFIGS["v-trailing"], "default", None, Churn(2.0))
    sched.set_timesteps(10)
    index = sched.start_at(4)
    zero, one = np.zeros(SHAPE, np.float32), np.ones(SHAPE, np.float32)
    assert sched.add_noise(zero, one, index).max() == pytest.approx(sched.step_sigmas[4])
    queue = NoiseQueue(SHAPE, 3)
    latents = sched.prepare(sched.add_noise(zero, queue(SHAPE), index), index, queue)
    latents = sched.step(fake_unet(latents, sched.timesteps[index]), index, latents, queue)
    churned = float(sched.sigmas[index + 1])
    assert churned > sched.step_sigmas[5] * 1.1
    assert sched.add_noise(zero, one, index + 1).max() == pytest.approx(churned)
