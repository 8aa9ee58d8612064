"""DDIM CFG++ against diffusers' DDIM with the CFG++ direction, and the loop that feeds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from impasto.engine.pipelines.base import Denoise
from impasto.engine.schedulers import SchedulerConfig, create_scheduler

from .scheduler_oracle import NoiseQueue, fake_unet

SHAPE = (1, 4, 8, 8)
SCALE = 7.5


def uncond_unet(sample: np.ndarray, t: float) -> np.ndarray:
    return (0.8 * fake_unet(sample * 0.9, t) - 0.05).astype(np.float32)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddim_cfg_pp_matches_diffusers_ddim_with_the_uncond_direction(
    prediction_type: str,
) -> None:
    config = SchedulerConfig(prediction_type=prediction_type)
    ours = create_scheduler("ddim_cfg_pp", config)
    ours.set_timesteps(10)
    theirs = DDIMScheduler.from_config(
        {
            "prediction_type": prediction_type,
            "steps_offset": 1,
            "beta_schedule": "scaled_linear",
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "set_alpha_to_one": False,
            "clip_sample": False,
        }
    )
    theirs.set_timesteps(10)
    x = NoiseQueue(SHAPE, 1)(SHAPE)
    y = torch.from_numpy(x.copy())
    scale = SCALE / 12.5
    for i, t in enumerate(theirs.timesteps):
        cond, uncond = fake_unet(x, float(t)), uncond_unet(x, float(t))
        ours.uncond_output = uncond
        x = ours.step(uncond + scale * (cond - uncond), i, x, NoiseQueue(SHAPE, 2))

        yc, yu = (torch.from_numpy(f(y.numpy(), float(t))) for f in (fake_unet, uncond_unet))
        guided = yu + scale * (yc - yu)
        prev = theirs.step(guided, t, y).prev_sample
        # CFG++: x_prev = sqrt(a_prev) x0(guided) + sqrt(1 - a_prev) eps(uncond).
        a = theirs.alphas_cumprod[int(t)]
        prev_t = int(t) - 1000 // 10
        a_prev = theirs.alphas_cumprod[prev_t] if prev_t >= 0 else theirs.final_alpha_cumprod

        # v-prediction: eps = sqrt(a) v + sqrt(1 - a) x, so only the v part differs.
        swap = yu - guided if prediction_type == "epsilon" else a**0.5 * (yu - guided)
        y = prev + (1 - a_prev) ** 0.5 * swap
    np.testing.assert_allclose(x, y.numpy(), rtol=0, atol=1e-4)
    plain = create_scheduler("ddim", config)
    plain.set_timesteps(10)
    assert not np.allclose(x, plain.step(fake_unet(x, 1.0), 9, x, NoiseQueue(SHAPE, 2)))


@dataclass
class RecordingGuidance:
    """Stands in for ``Guidance``: records the scales it is asked for."""

    scale: float = SCALE
    scales: list[float] = field(default_factory=list)

    def predict(self, sample: np.ndarray, t: float, skip_uncond: bool = False) -> np.ndarray:
        self.scales.append(self.scale)
        return fake_unet(sample, t)

    def predict_with_uncond(
        self, sample: np.ndarray, t: float, scale: float, skip_uncond: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        self.scales.append(scale)
        return fake_unet(sample, t), uncond_unet(sample, t)


@pytest.mark.parametrize(("sampler", "expected"), [("ddim_cfg_pp", SCALE / 12.5), ("ddim", SCALE)])
def test_the_loop_hands_cfg_pp_the_uncond_output_at_scale_over_12_5(
    sampler: str, expected: float
) -> None:
    sched = create_scheduler(sampler, SchedulerConfig())
    sched.set_timesteps(4)
    guidance: Any = RecordingGuidance()
    denoise = Denoise(scheduler=sched, guidance=guidance, noise=NoiseQueue(SHAPE, 2))
    denoise.run(NoiseQueue(SHAPE, 1)(SHAPE), 0)
    assert guidance.scales == [pytest.approx(expected)] * 4
    if sampler == "ddim_cfg_pp":
        assert sched.uncond_output is not None
