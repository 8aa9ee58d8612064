"""Every sampler matches its diffusers counterpart step for step, on a fake UNet."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from impasto.engine.schedulers import (
    SAMPLER_NAMES,
    SAMPLERS,
    SCHEDULES,
    SchedulerConfig,
    create_scheduler,
    sampler_schedules,
)

from .scheduler_oracle import (
    SCHEDULE_FLAGS,
    NoiseQueue,
    diffusers_scheduler,
    fake_unet,
    run_diffusers,
    run_impasto,
)

SHAPE = (1, 4, 8, 8)
TOLERANCE = 1e-4

SD15 = SchedulerConfig()  # leading spacing, steps_offset 1, epsilon
CONFIGS = {
    "eps-leading": SD15,
    "eps-linspace": SchedulerConfig(timestep_spacing="linspace", steps_offset=0),
    "v-trailing": SchedulerConfig(prediction_type="v_prediction", timestep_spacing="trailing"),
    "v-leading": SchedulerConfig(prediction_type="v_prediction"),
}
ZERO_SNR = SchedulerConfig(
    prediction_type="v_prediction", timestep_spacing="trailing", rescale_betas_zero_snr=True
)


def diffusers_schedules(sampler_id: str) -> list[str]:
    """The schedules diffusers has too; the A1111/ComfyUI ones are compared with k-diffusion."""
    return [s for s in sampler_schedules(sampler_id) if s in SCHEDULE_FLAGS]


def clean_latents(seed: int = 7) -> np.ndarray:
    """Stand-in VAE latents of an init image."""
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


class SamplerContract:
    """The contract every sampler obeys; subclasses name the sampler and its quirks."""

    sampler_id: ClassVar[str]
    steps: ClassVar[int] = 12
    calls_per_step: ClassVar[tuple[int, int]] = (1, 0)  # timesteps = a * N + b
    zero_snr: ClassVar[bool] = True  # diffusers supports rescale_betas_zero_snr here
    extra: ClassVar[dict[str, Any]] = {}
    run: ClassVar[dict[str, Any]] = {}  # a run's settings (SchedulerConfig.RUN_SETTINGS)

    def compare(
        self, config: SchedulerConfig, schedule: str, monkeypatch: Any, start: int = 0
    ) -> None:
        """Run both loops on the same noise and require them to agree."""
        config = replace(config, **self.run)
        init = clean_latents() if start else None
        ours = run_impasto(
            self.sampler_id,
            config,
            schedule,
            self.steps,
            NoiseQueue(SHAPE, 3),
            start,
            init,
            **self.extra,
        )
        theirs = run_diffusers(
            self.sampler_id,
            config,
            schedule,
            self.steps,
            NoiseQueue(SHAPE, 3),
            start,
            init,
            monkeypatch,
            **self.extra,
        )
        assert np.isfinite(ours).all()
        assert np.abs(ours).max() > 1e-3  # the loop did produce something
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOLERANCE)

    @pytest.mark.parametrize("config_name", list(CONFIGS))
    def test_txt2img_matches_diffusers(self, config_name: str, monkeypatch: Any) -> None:
        for schedule in diffusers_schedules(self.sampler_id):
            with monkeypatch.context() as patch:
                self.compare(CONFIGS[config_name], schedule, patch)

    @pytest.mark.parametrize("config_name", ["eps-leading", "v-trailing"])
    def test_img2img_matches_diffusers(self, config_name: str, monkeypatch: Any) -> None:
        strength = 0.6
        sched = create_scheduler(self.sampler_id, CONFIGS[config_name])
        start = (self.steps - min(int(self.steps * strength), self.steps)) * sched.order
        assert start > 0
        for schedule in diffusers_schedules(self.sampler_id):
            with monkeypatch.context() as patch:
                self.compare(CONFIGS[config_name], schedule, patch, start=start)

    def test_zero_terminal_snr_matches_diffusers(self, monkeypatch: Any) -> None:
        if not self.zero_snr:
            # diffusers ignores rescale_betas_zero_snr here; Impasto applies it.
            sched = create_scheduler(self.sampler_id, ZERO_SNR)
            plain = create_scheduler(self.sampler_id, CONFIGS["v-trailing"])
            sched.set_timesteps(self.steps)
            plain.set_timesteps(self.steps)
            noisy = sched.add_noise(clean_latents(), clean_latents(1), 0)
            assert not np.allclose(noisy, plain.add_noise(clean_latents(), clean_latents(1), 0))
            return
        self.compare(ZERO_SNR, "default", monkeypatch)
        self.compare(ZERO_SNR, "default", monkeypatch, start=self.steps // 2)

    def test_timesteps_one_per_unet_call(self) -> None:
        a, b = self.calls_per_step
        for steps in (2, 5, self.steps):
            sched = create_scheduler(self.sampler_id, SD15)
            sched.set_timesteps(steps)
            assert sched.timesteps.shape == (a * steps + b,)
            assert sched.timesteps.dtype == np.float64

    def test_batch_images_are_independent(self) -> None:
        def noise_fn_for(seeds: list[int]):
            generators = [np.random.default_rng(seed) for seed in seeds]

            def noise(shape: tuple[int, ...]) -> np.ndarray:
                rows = [g.standard_normal(shape[1:]) for g in generators]
                return np.stack(rows).astype(np.float32)

            return noise

        def generate(seeds: list[int]) -> np.ndarray:
            noise = noise_fn_for(seeds)
            sched = create_scheduler(self.sampler_id, SD15)
            sched.set_timesteps(8)
            latents = noise((len(seeds), *SHAPE[1:])) * np.float32(sched.init_noise_sigma)
            for i in range(len(sched.timesteps)):
                model_input = sched.scale_model_input(latents, i)
                latents = sched.step(fake_unet(model_input, sched.timesteps[i]), i, latents, noise)
            return latents

        pair = generate([11, 22])
        np.testing.assert_allclose(pair[0], generate([11])[0], atol=1e-6, rtol=0)
        np.testing.assert_allclose(pair[1], generate([22])[0], atol=1e-6, rtol=0)
        assert not np.allclose(pair[0], pair[1])

    def test_step_keeps_float32(self) -> None:
        sched = create_scheduler(self.sampler_id, SD15)
        sched.set_timesteps(4)
        latents = NoiseQueue(SHAPE, 1)(SHAPE)
        out = sched.step(fake_unet(latents, sched.timesteps[0]), 0, latents, NoiseQueue(SHAPE, 2))
        assert out.dtype == np.float32


class TestEulerAncestral(SamplerContract):
    sampler_id = "euler_a"


class TestEuler(SamplerContract):
    sampler_id = "euler"


class TestHeun(SamplerContract):
    sampler_id = "heun"
    calls_per_step = (2, -1)
    zero_snr = False


class TestLMS(SamplerContract):
    sampler_id = "lms"
    zero_snr = False


class TestDDIM(SamplerContract):
    sampler_id = "ddim"


class TestDDIMWithEta(SamplerContract):
    sampler_id = "ddim"
    extra: ClassVar[dict[str, Any]] = {"eta": 0.7}


class TestPNDM(SamplerContract):
    sampler_id = "pndm"
    calls_per_step = (1, 1)
    zero_snr = False


class TestDPMPP2M(SamplerContract):
    sampler_id = "dpmpp_2m"


class TestDPMPP2MLong(SamplerContract):
    sampler_id = "dpmpp_2m"
    steps = 20  # 15 steps or more keep second order up to the last step


class TestDPMPP2MSDE(SamplerContract):
    sampler_id = "dpmpp_2m_sde"


class TestDPMPP2MSDEHeun(SamplerContract):
    sampler_id = "dpmpp_2m_sde_heun"


class TestUniPC(SamplerContract):
    sampler_id = "unipc"


class TestUniPCThirdOrder(SamplerContract):
    """diffusers' solver_order 3 (A1111's UniPC order default)."""

    sampler_id = "unipc"
    run: ClassVar[dict[str, Any]] = {"unipc_order": 3}


class TestUniPCFirstOrder(SamplerContract):
    sampler_id = "unipc"
    run: ClassVar[dict[str, Any]] = {"unipc_order": 1}


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("config_name", ["eps-leading", "v-trailing"])
def test_unipc_bh1_follows_diffusers_up_to_its_last_step(order: int, config_name: str) -> None:
    """bh1 (A1111's default UniPC variant) takes B(h) = h, infinite on the last step to sigma
    0: diffusers' last step is then NaN (inf * 0), ours its first-order limit, the x0
    prediction. So the runs are compared step by step up to it."""
    config = replace(CONFIGS[config_name], unipc_order=order, unipc_variant="bh1")
    steps = 8
    ours = create_scheduler("unipc", config)
    ours.set_timesteps(steps)
    theirs = diffusers_scheduler("unipc", config, "default")
    theirs.set_timesteps(steps)
    assert theirs.config.solver_type == "bh1" and theirs.config.solver_order == order
    x = NoiseQueue(SHAPE, 3)(SHAPE)
    y = torch.from_numpy(x.copy())
    for i, t in enumerate(theirs.timesteps):
        assert float(t) == float(ours.timesteps[i])
        x = ours.step(fake_unet(ours.scale_model_input(x, i), float(t)), i, x, NoiseQueue(SHAPE, 9))
        y = theirs.step(torch.from_numpy(fake_unet(y.numpy(), float(t))), t, y).prev_sample
        if i < steps - 1:
            np.testing.assert_allclose(x, y.numpy(), rtol=0, atol=TOLERANCE, err_msg=str(i))
    assert np.isfinite(x).all() and not np.isfinite(y.numpy()).all()
    bh2 = create_scheduler("unipc", replace(config, unipc_variant="bh2"))
    bh2.set_timesteps(steps)
    z = NoiseQueue(SHAPE, 3)(SHAPE)
    for i, t in enumerate(bh2.timesteps):
        z = bh2.step(fake_unet(z, float(t)), i, z, NoiseQueue(SHAPE, 9))
    assert not np.allclose(x, z, atol=1e-3)  # the variant changes the picture


class TestLCM(SamplerContract):
    sampler_id = "lcm"
    steps = 6


def test_unknown_sampler_lists_allowed_ids() -> None:
    with pytest.raises(ValueError, match="unknown sampler 'k_dpm_9'") as err:
        create_scheduler("k_dpm_9", SD15)
    for sampler_id in SAMPLERS:
        assert sampler_id in str(err.value)
    with pytest.raises(ValueError, match="unknown sampler"):
        sampler_schedules("nope")


def test_unsupported_schedule_is_rejected() -> None:
    with pytest.raises(ValueError, match="'karras'") as err:
        create_scheduler("ddim", SD15, "karras")
    assert "default" in str(err.value)
    with pytest.raises(ValueError, match="'beta'"):
        create_scheduler("lcm", SD15, "beta")


def test_registry_is_complete() -> None:
    assert set(SAMPLER_NAMES) == set(SAMPLERS)
    assert SAMPLER_NAMES["euler_a"] == "Euler a"
    assert SAMPLER_NAMES["dpmpp_2m"] == "DPM++ 2M"
    sigma_based = {"euler_a", "euler", "heun", "lms", "dpmpp_2m", "dpmpp_2m_sde", "unipc"}
    sigma_based |= {"dpmpp_2m_sde_heun", "dpm_2", "dpm_2_a", "dpmpp_2s_a", "dpmpp_sde"}
    sigma_based |= {"dpmpp_3m_sde", "restart", "dpm_fast", "dpm_adaptive"}
    for sampler_id in SAMPLERS:
        expected = SCHEDULES if sampler_id in sigma_based else ("default",)
        assert sampler_schedules(sampler_id) == expected
