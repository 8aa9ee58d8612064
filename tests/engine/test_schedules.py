"""Every A1111/ComfyUI sigma schedule equals its reference formula."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers.schedulers.scheduling_utils import AysSchedules
from scipy.stats import beta as beta_distribution

from impasto.engine.schedulers import (
    SchedulerConfig,
    create_scheduler,
    schedule_for_model,
    sigma_samplers,
)
from impasto.engine.schedulers.schedules import (
    AYS_SD15,
    AYS_SDXL,
    NAMED_SCHEDULES,
    SCHEDULE_RHO,
    SIGMA_RANGE_SCHEDULES,
    beta_ppf,
)
from impasto.engine.schedulers.sigmas import (
    alphas_cumprod,
    k_schedule,
    solver_schedule,
    train_sigmas,
)
from impasto.engine.schedulers.solver_base import SolverSampler

from . import kdiffusion_oracle
from .scheduler_oracle import NoiseQueue, fake_unet

SHAPE = (1, 4, 8, 8)
SD15 = SchedulerConfig()
TRAIN = train_sigmas(alphas_cumprod(SD15)).astype(np.float64)


def ours(schedule: str, steps: int) -> np.ndarray:
    return NAMED_SCHEDULES[schedule](TRAIN, steps)


def k_model() -> object:
    return kdiffusion_oracle.denoiser(SD15)


@pytest.mark.parametrize("steps", [1, 7, 20, 33])
def test_uniform_is_k_diffusions_get_sigmas(steps: int) -> None:
    model = k_model()
    expected = model.get_sigmas(steps).numpy()  # type: ignore[attr-defined]
    np.testing.assert_allclose(ours("uniform", steps), expected, rtol=1e-5)


@pytest.mark.parametrize("steps", [2, 7, 20])
def test_normal_and_sgm_uniform_follow_a1111(steps: int) -> None:
    model = k_model()
    start = model.sigma_to_t(torch.tensor(TRAIN[-1], dtype=torch.float32))  # type: ignore[attr-defined]
    end = model.sigma_to_t(torch.tensor(TRAIN[0], dtype=torch.float32))  # type: ignore[attr-defined]

    def sigmas(ts: torch.Tensor) -> np.ndarray:
        return np.append(model.t_to_sigma(ts).numpy(), 0.0)  # type: ignore[attr-defined]

    normal = sigmas(torch.linspace(float(start), float(end), steps))
    sgm = sigmas(torch.linspace(float(start), float(end), steps + 1)[:-1])
    np.testing.assert_allclose(ours("normal", steps), normal, rtol=1e-5)
    np.testing.assert_allclose(ours("sgm_uniform", steps), sgm, rtol=1e-5)


@pytest.mark.parametrize("steps", [3, 20])
def test_polyexponential_is_k_diffusions(steps: int) -> None:
    sampling, _ = kdiffusion_oracle.load()
    expected = sampling.get_sigmas_polyexponential(steps, TRAIN[0], TRAIN[-1], rho=1.0)
    np.testing.assert_allclose(ours("polyexponential", steps), expected.numpy(), rtol=1e-5)


def test_kl_optimal_is_evenly_spaced_in_arctan_and_ends_at_sigma_min() -> None:
    sigmas = ours("kl_optimal", 10)
    angles = np.arctan(sigmas)
    np.testing.assert_allclose(np.diff(angles), np.diff(angles)[0], rtol=1e-9)
    assert sigmas[0] == pytest.approx(TRAIN[-1]) and sigmas[-1] == pytest.approx(TRAIN[0])
    assert len(sigmas) == 11


def test_align_your_steps_tables_are_nvidias() -> None:
    np.testing.assert_allclose(AYS_SD15[:-1], AysSchedules["StableDiffusionSigmas"][:-1])
    np.testing.assert_allclose(AYS_SDXL[:-1], AysSchedules["StableDiffusionXLSigmas"][:-1])
    np.testing.assert_allclose(ours("align_your_steps", 11), [*AYS_SD15, 0.0])
    np.testing.assert_allclose(ours("align_your_steps_sdxl", 11), [*AYS_SDXL, 0.0])


def test_align_your_steps_resamples_log_linearly() -> None:
    sigmas = ours("align_your_steps", 21)
    assert len(sigmas) == 22 and sigmas[-1] == 0.0
    # Every other point of a 2x-resampled table is the table itself.
    np.testing.assert_allclose(sigmas[:-1][::2], AYS_SD15, rtol=1e-9)
    np.testing.assert_allclose(sigmas[1:-1:2], np.sqrt(np.array(AYS_SD15[:-1]) * AYS_SD15[1:]))


def test_align_your_steps_picks_the_sdxl_table_for_sdxl_models() -> None:
    assert schedule_for_model("align_your_steps", sdxl=True) == "align_your_steps_sdxl"
    assert schedule_for_model("align_your_steps", sdxl=False) == "align_your_steps"
    assert schedule_for_model("karras", sdxl=True) == "karras"


def test_simple_and_ddim_uniform_pick_training_sigmas() -> None:
    np.testing.assert_allclose(ours("simple", 4), [*TRAIN[[999, 749, 499, 249]], 0.0])
    np.testing.assert_allclose(ours("ddim_uniform", 4), [*TRAIN[[751, 501, 251, 1]], 0.0])
    # 1000 // 30 = 33 leaves 31 steps, as in ComfyUI and A1111.
    assert len(ours("ddim_uniform", 30)) == 32


@pytest.mark.parametrize("q", [0.001, 0.05, 0.3, 0.5, 0.77, 0.999])
def test_beta_quantiles_match_scipy(q: float) -> None:
    assert beta_ppf(q, 0.6, 0.6) == pytest.approx(beta_distribution.ppf(q, 0.6, 0.6), abs=1e-12)
    assert beta_ppf(q, 2.0, 0.5) == pytest.approx(beta_distribution.ppf(q, 2.0, 0.5), abs=1e-12)


def test_beta_takes_training_sigmas_at_beta_quantiles() -> None:
    steps = 40
    quantiles = 1 - np.linspace(0, 1, steps, endpoint=False)
    ts = np.rint(beta_distribution.ppf(quantiles, 0.6, 0.6) * 999).astype(int)
    kept = [t for i, t in enumerate(ts) if i == 0 or t != ts[i - 1]]
    np.testing.assert_allclose(ours("beta", steps), [*TRAIN[kept], 0.0])


@pytest.mark.parametrize("schedule", sorted(NAMED_SCHEDULES))
def test_schedules_fall_from_the_top_and_samplers_use_them(schedule: str) -> None:
    sigmas = ours(schedule, 12)
    assert np.all(np.diff(sigmas) < 0)
    if schedule != "ddim_uniform":  # which stops short of the top: 1 + 83 * 12 = 997
        assert sigmas[0] == pytest.approx(TRAIN[-1], rel=1e-3)
    timesteps, laid_out, _ = k_schedule(SD15, 12, schedule)
    np.testing.assert_allclose(laid_out, sigmas, rtol=1e-6)
    assert timesteps.shape == (len(sigmas) - 1,) and 0 <= timesteps.min() <= timesteps.max() <= 999
    for sampler in ("euler", "dpm_2"):  # k-diffusion's start: noise times the top sigma
        sched = create_scheduler(sampler, SD15, schedule)
        sched.set_timesteps(12)
        # DPM2 lays out 13 steps and drops the next-to-last sigma (A1111's and ComfyUI's DPM2).
        top = k_schedule(replace(SD15, discard_penultimate=sampler == "dpm_2"), 12, schedule)[1][0]
        assert sched.init_noise_sigma == pytest.approx(top, rel=1e-6)
    solver = create_scheduler("dpmpp_2m", SD15, schedule)
    solver.set_timesteps(12)
    np.testing.assert_allclose(solver.sigmas, sigmas, rtol=1e-6)


K_SAMPLERS = {
    "euler": ("sample_euler", {}),
    "euler_a": ("sample_euler_ancestral", {"noise": True}),
    "heun": ("sample_heun", {}),
    "lms": ("sample_lms", {}),
    "dpmpp_2m": ("sample_dpmpp_2m", {}),
    "dpmpp_2m_sde": ("sample_dpmpp_2m_sde", {"noise": True}),
    "dpmpp_2m_sde_heun": ("sample_dpmpp_2m_sde", {"noise": True, "solver_type": "heun"}),
}
"""Samplers compared with diffusers on its schedules, and with k-diffusion on these."""


@pytest.mark.parametrize("sampler_id", list(K_SAMPLERS))
@pytest.mark.parametrize("config_name", ["eps", "v"])
def test_samplers_on_these_schedules_match_k_diffusion(sampler_id: str, config_name: str) -> None:
    config = SD15 if config_name == "eps" else SchedulerConfig(prediction_type="v_prediction")
    sampling, _ = kdiffusion_oracle.load()
    name, options = K_SAMPLERS[sampler_id]
    for schedule in NAMED_SCHEDULES:
        sched = create_scheduler(sampler_id, config, schedule)
        sched.set_timesteps(10)
        queue = NoiseQueue(SHAPE, 3)
        latents = queue(SHAPE) * np.float32(sched.init_noise_sigma)
        i = 0
        while i < len(sched.timesteps):
            model_input = sched.scale_model_input(latents, i)
            latents = sched.step(fake_unet(model_input, sched.timesteps[i]), i, latents, queue)
            i += 1
        _, sigmas, _ = k_schedule(config, 10, schedule)
        if sigmas[-1] > 0 and isinstance(sched, SolverSampler):
            # KL Optimal ends above 0, where variance-preserving latents are x * alpha.
            latents = latents * np.float32(np.sqrt(sigmas[-1] ** 2 + 1))
        reference = NoiseQueue(SHAPE, 3)
        tail = torch.from_numpy(sigmas.astype(np.float32))
        x = torch.from_numpy(reference(SHAPE)) * tail[0]
        extra: dict[str, object] = {"disable": True}
        if options.get("noise"):
            extra["noise_sampler"] = kdiffusion_oracle.noise_sampler(reference)
        if "solver_type" in options:
            extra["solver_type"] = options["solver_type"]
        with torch.no_grad():
            expected = getattr(sampling, name)(kdiffusion_oracle.denoiser(config), x, tail, **extra)
        np.testing.assert_allclose(latents, expected.numpy(), rtol=0, atol=1e-4, err_msg=schedule)


MOVED = replace(SD15, sigma_min=0.1, sigma_max=10.0, rho=5.0)
"""A run that moves the ends of the schedule and its curvature (A1111's schedule options)."""


@pytest.mark.parametrize("steps", [4, 20])
def test_moved_karras_exponential_and_polyexponential_are_k_diffusions(steps: int) -> None:
    sampling, _ = kdiffusion_oracle.load()
    expected = {
        "karras": sampling.get_sigmas_karras(steps, 0.1, 10.0, rho=5.0),
        "exponential": sampling.get_sigmas_exponential(steps, 0.1, 10.0),
        "polyexponential": sampling.get_sigmas_polyexponential(steps, 0.1, 10.0, rho=5.0),
    }
    for schedule, sigmas in expected.items():
        _, euler, _ = k_schedule(MOVED, steps, schedule)  # the sigma-loop samplers' layout
        np.testing.assert_allclose(euler, sigmas.numpy(), rtol=1e-6, err_msg=schedule)
        _, solver, _ = solver_schedule(MOVED, steps, schedule)  # DPM-Solver's and UniPC's
        np.testing.assert_allclose(solver, sigmas.numpy(), rtol=1e-6, err_msg=schedule)


def test_one_moved_end_keeps_the_other() -> None:
    _, own, _ = k_schedule(SD15, 8, "karras")
    _, low, _ = k_schedule(replace(SD15, sigma_min=0.5), 8, "karras")
    _, top, _ = k_schedule(replace(SD15, sigma_max=5.0), 8, "karras")
    assert low[0] == own[0] and low[-2] == pytest.approx(0.5, rel=1e-6)
    assert top[-2] == own[-2] and top[0] == pytest.approx(5.0, rel=1e-6)
    _, steeper, _ = k_schedule(replace(SD15, rho=3.0), 8, "karras")
    assert (steeper[0], steeper[-2]) == (own[0], own[-2]) and steeper[3] != own[3]


@pytest.mark.parametrize("steps", [3, 12])
def test_moved_normal_sgm_uniform_and_kl_optimal_follow_a1111(steps: int) -> None:
    model = k_model()
    start = float(model.sigma_to_t(torch.tensor(10.0)))  # type: ignore[attr-defined]
    end = float(model.sigma_to_t(torch.tensor(0.1)))  # type: ignore[attr-defined]

    def sigmas(ts: torch.Tensor) -> np.ndarray:
        return np.append(model.t_to_sigma(ts).numpy(), 0.0)  # type: ignore[attr-defined]

    expected = {
        "normal": sigmas(torch.linspace(start, end, steps)),
        "sgm_uniform": sigmas(torch.linspace(start, end, steps + 1)[:-1]),
        # A1111's kl_optimal: tan of arctan(sigma_max) .. arctan(sigma_min) in even steps.
        "kl_optimal": np.tan(
            np.arange(steps + 1) / steps * np.arctan(0.1)
            + (1 - np.arange(steps + 1) / steps) * np.arctan(10.0)
        ),
    }
    for schedule, reference in expected.items():
        _, laid_out, _ = k_schedule(MOVED, steps, schedule)
        np.testing.assert_allclose(laid_out, reference, rtol=1e-5, err_msg=schedule)


@pytest.mark.parametrize("schedule", sorted(set(NAMED_SCHEDULES) - set(SIGMA_RANGE_SCHEDULES)))
def test_schedules_without_a_range_ignore_the_bounds(schedule: str) -> None:
    _, own, _ = k_schedule(SD15, 10, schedule)
    _, moved, _ = k_schedule(MOVED, 10, schedule)
    np.testing.assert_array_equal(moved, own)


def test_rho_moves_only_the_schedules_with_one() -> None:
    for schedule in SIGMA_RANGE_SCHEDULES:
        _, own, _ = k_schedule(replace(SD15, sigma_min=0.1), 10, schedule)
        _, steeper, _ = k_schedule(replace(SD15, sigma_min=0.1, rho=3.0), 10, schedule)
        assert (schedule in SCHEDULE_RHO) == (not np.array_equal(steeper, own)), schedule


def test_a_model_config_does_not_set_the_runs_bounds() -> None:
    config = SchedulerConfig.from_dict({"sigma_min": 0.5, "sigma_max": 3.0, "rho": 2.0})
    assert (config.sigma_min, config.sigma_max, config.rho) == (None, None, None)


def test_samplers_run_on_the_moved_schedule() -> None:
    for sampler in ("euler", "dpmpp_2m", "heun"):  # (DPM2 drops its lowest: the test above)
        sched = create_scheduler(sampler, MOVED, "karras")
        sched.set_timesteps(6)
        sigmas = sched.sigmas  # type: ignore[attr-defined]
        assert sigmas[0] == pytest.approx(10.0, rel=1e-6), sampler
        assert sigmas[sigmas > 0].min() == pytest.approx(0.1, rel=1e-6), sampler


@pytest.mark.parametrize("sampler", ["dpm_2", "dpm_2_a"])
def test_dpm2_drops_the_next_to_last_sigma_of_one_step_more_as_a1111(sampler: str) -> None:
    # A1111 (discard_next_to_last_sigma) and ComfyUI (DISCARD_PENULTIMATE_SIGMA_SAMPLERS):
    # get_sigmas(steps + 1), then cat(sigmas[:-2], sigmas[-1:]).
    sampling, _ = kdiffusion_oracle.load()
    sched = create_scheduler(sampler, MOVED, "karras")
    sched.set_timesteps(8)
    expected = sampling.get_sigmas_karras(9, 0.1, 10.0, rho=5.0)
    expected = torch.cat([expected[:-2], expected[-1:]]).numpy()
    np.testing.assert_allclose(sched.step_sigmas, expected, rtol=1e-6)  # type: ignore[attr-defined]
    euler = create_scheduler("euler", MOVED, "karras")
    euler.set_timesteps(8)
    assert len(euler.step_sigmas) == 9  # type: ignore[attr-defined]
    np.testing.assert_allclose(
        euler.step_sigmas,  # type: ignore[attr-defined]
        sampling.get_sigmas_karras(8, 0.1, 10.0, rho=5.0).numpy(),
        rtol=1e-6,
    )


def test_a_run_may_ask_the_other_k_samplers_to_drop_it_too() -> None:
    asked = replace(SD15, discard_penultimate=True)
    for sampler in ("euler", "lms", "dpmpp_2m"):
        sched = create_scheduler(sampler, asked, "karras")
        sched.set_timesteps(6)
        sigmas = sched.sigmas  # type: ignore[attr-defined]
        _, plain, _ = k_schedule(SD15, 7, "karras")
        if sampler == "dpmpp_2m":
            _, plain, _ = solver_schedule(SD15, 7, "karras")
        np.testing.assert_allclose(sigmas, np.delete(plain, -2), rtol=1e-6, err_msg=sampler)
    for sampler in ("ddim", "unipc", "lcm", "pndm"):
        with pytest.raises(ValueError, match="discards no sigma"):
            create_scheduler(sampler, asked)


SGM = replace(SD15, sgm_noise_multiplier=True)
"""A run with A1111's "SGM noise multiplier"."""


@pytest.mark.parametrize("sampler", sigma_samplers())
def test_the_sgm_noise_multiplier_starts_the_unet_on_the_unit_noise(sampler: str) -> None:
    # A1111 (KDiffusionSampler.sample): x * sqrt(1 + sigmas[0] ** 2) instead of x * sigmas[0],
    # so the UNet's first input, x / sqrt(sigma^2 + 1), is the noise itself; the sigmas stay.
    noise = NoiseQueue(SHAPE, 5)(SHAPE)
    for schedule in ("karras", "uniform", "default"):
        plain = create_scheduler(sampler, SD15, schedule)
        plain.set_timesteps(8)
        sgm = create_scheduler(sampler, SGM, schedule)
        sgm.set_timesteps(8)
        first = sgm.scale_model_input(noise * np.float32(sgm.init_noise_sigma), 0)
        np.testing.assert_allclose(first, noise, rtol=1e-6, err_msg=schedule)
        np.testing.assert_array_equal(sgm.sigmas, plain.sigmas)  # type: ignore[attr-defined]
        if schedule == "uniform" and not isinstance(sgm, SolverSampler):
            top = TRAIN[-1]  # k-diffusion's get_sigmas starts at the model's sigma_max
            assert plain.init_noise_sigma == pytest.approx(top, rel=1e-6)
            assert sgm.init_noise_sigma == pytest.approx(np.sqrt(1 + top**2), rel=1e-6)


@pytest.mark.parametrize("sampler_id", ["euler", "dpmpp_2m", "lms"])
def test_samplers_from_the_sgm_start_match_k_diffusion(sampler_id: str) -> None:
    """Our sampler from its SGM start against k-diffusion's from A1111's: the variance-
    preserving DPM++ 2M starting on the unit noise is the same walk."""
    sampling, _ = kdiffusion_oracle.load()
    name, _ = K_SAMPLERS[sampler_id]
    sched = create_scheduler(sampler_id, SGM, "uniform")  # where A1111 starts at the top sigma
    sched.set_timesteps(6)
    queue = NoiseQueue(SHAPE, 4)
    latents = queue(SHAPE) * np.float32(sched.init_noise_sigma)
    for i in range(len(sched.timesteps)):
        model_input = sched.scale_model_input(latents, i)
        latents = sched.step(fake_unet(model_input, sched.timesteps[i]), i, latents, queue)
    tail = torch.from_numpy(k_schedule(SD15, 6, "uniform")[1].astype(np.float32))
    x = torch.from_numpy(NoiseQueue(SHAPE, 4)(SHAPE)) * torch.sqrt(1.0 + tail[0] ** 2.0)
    with torch.no_grad():
        expected = getattr(sampling, name)(kdiffusion_oracle.denoiser(SD15), x, tail, disable=True)
    np.testing.assert_allclose(latents, expected.numpy(), rtol=0, atol=1e-4)
