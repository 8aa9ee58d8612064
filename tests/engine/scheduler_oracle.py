"""Runs the same denoising loop through an Impasto sampler and its diffusers counterpart."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers import scheduling_lms_discrete
from diffusers.schedulers.scheduling_lms_discrete import LMSDiscreteScheduler

from impasto.engine.schedulers import SchedulerConfig, create_scheduler

ORACLES: dict[str, tuple[Any, dict[str, Any]]] = {
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {}),
    "lms": (LMSDiscreteScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "dpmpp_2m_sde": (DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++"}),
    "dpmpp_2m_sde_heun": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"},
    ),
    "unipc": (UniPCMultistepScheduler, {}),
    "lcm": (LCMScheduler, {}),
}
"""Sampler id -> (diffusers class, config overrides that select the same algorithm)."""

SCHEDULE_FLAGS = {
    "default": {},
    "karras": {"use_karras_sigmas": True},
    "exponential": {"use_exponential_sigmas": True},
}


def fake_unet(sample: np.ndarray, timestep: float) -> np.ndarray:
    """A deterministic stand-in for the UNet that depends on both input and timestep."""
    t = np.float32(timestep)
    return (0.1 * sample + np.sin(t / 100) + 0.2 * np.tanh(sample) * np.cos(t / 37)).astype(
        np.float32
    )


class NoiseQueue:
    """Hands out pre-drawn noise in order, to both implementations alike."""

    def __init__(self, shape: tuple[int, ...], seed: int, count: int = 64) -> None:
        rng = np.random.default_rng(seed)
        self.items = [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
        self.used = 0

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        item = self.items[self.used]
        assert item.shape == tuple(shape)
        self.used += 1
        return item


class GaussLegendre:
    """Stands in for ``scipy.integrate`` (not installed) in diffusers' LMS scheduler.

    LMS integrates polynomials of degree <= 3, which 8-point Gauss-Legendre does exactly.
    """

    @staticmethod
    def quad(func: Callable[[float], Any], a: Any, b: Any, **_: Any) -> tuple[float, float]:
        nodes, weights = np.polynomial.legendre.leggauss(8)
        a, b = float(a), float(b)
        points = (b - a) / 2 * nodes + (a + b) / 2
        total = sum(float(w) * float(func(float(x))) for w, x in zip(weights, points, strict=True))
        return total * (b - a) / 2, 0.0


def diffusers_scheduler(sampler_id: str, config: SchedulerConfig, schedule: str) -> Any:
    """The diffusers scheduler that ``create_scheduler(sampler_id, config, schedule)`` mirrors."""
    cls, overrides = ORACLES[sampler_id]
    settings = {**dataclasses.asdict(config), **overrides}
    # A run's UniPC settings under diffusers' names.
    if config.unipc_order is not None:
        settings["solver_order"] = config.unipc_order
    if config.unipc_variant is not None:
        settings["solver_type"] = config.unipc_variant
    if sampler_id == "euler_a":
        return cls.from_config(settings)
    return cls.from_config({**settings, **SCHEDULE_FLAGS[schedule]})


def _euler_a_karras_layout(sched: Any, config: SchedulerConfig, schedule: str, steps: int) -> None:
    # diffusers' Euler a has no sigma-schedule option; k-diffusion's "Euler a Karras" steps the
    # sigmas EulerDiscreteScheduler lays out, so borrow them.
    layout = EulerDiscreteScheduler.from_config(
        {**dataclasses.asdict(config), **SCHEDULE_FLAGS[schedule]}
    )
    layout.set_timesteps(steps)
    sched.sigmas, sched.timesteps = layout.sigmas, layout.timesteps


def run_impasto(
    sampler_id: str,
    config: SchedulerConfig,
    schedule: str,
    steps: int,
    noise: NoiseQueue,
    start: int = 0,
    init: np.ndarray | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """The pipeline's loop over an Impasto sampler (img2img when ``start`` > 0)."""
    sched = create_scheduler(sampler_id, config, schedule)
    for key, value in kwargs.items():
        setattr(sched, key, value)
    sched.set_timesteps(steps)
    first = noise(noise.items[0].shape)
    if start == 0:
        latents = first * np.float32(sched.init_noise_sigma)
    else:
        assert init is not None
        latents = sched.add_noise(init, first, start).astype(np.float32)
    for i in range(start, len(sched.timesteps)):
        model_input = sched.scale_model_input(latents, i)
        latents = sched.step(fake_unet(model_input, sched.timesteps[i]), i, latents, noise)
    return latents


def run_diffusers(
    sampler_id: str,
    config: SchedulerConfig,
    schedule: str,
    steps: int,
    noise: NoiseQueue,
    start: int = 0,
    init: np.ndarray | None = None,
    monkeypatch: Any = None,
    **kwargs: Any,
) -> np.ndarray:
    """The same loop through diffusers, fed the same noise through its ``randn_tensor``."""
    sched = diffusers_scheduler(sampler_id, config, schedule)
    sched.set_timesteps(steps)
    if sampler_id == "euler_a" and schedule != "default":
        _euler_a_karras_layout(sched, config, schedule, steps)
    if sampler_id == "lms":
        monkeypatch.setattr(scheduling_lms_discrete, "integrate", GaussLegendre, raising=False)
    module = __import__(type(sched).__module__, fromlist=["randn_tensor"])
    if hasattr(module, "randn_tensor"):
        monkeypatch.setattr(module, "randn_tensor", _torch_noise(noise))
    first = torch.from_numpy(noise(noise.items[0].shape))
    timesteps = sched.timesteps
    if start == 0:
        latents = first * sched.init_noise_sigma
    else:
        assert init is not None
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(start)
        latents = sched.add_noise(torch.from_numpy(init), first, timesteps[start : start + 1])
    step_kwargs = {"eta": kwargs["eta"]} if "eta" in kwargs else {}
    for k, t in enumerate(timesteps[start:]):
        if sampler_id == "lms":
            # diffusers picks the LMS order from the step index, not from the history it
            # holds; an img2img run must warm up like a fresh one, so cap the order.
            step_kwargs["order"] = min(k + 1, 4)
        model_input = sched.scale_model_input(latents, t)
        output = torch.from_numpy(fake_unet(model_input.numpy(), float(t)))
        latents = sched.step(output, t, latents, **step_kwargs).prev_sample
        if sampler_id == "pndm" and start >= 2 and k == 0:
            # diffusers would take the next call as the correction of a step it never
            # predicted (its own img2img quirk); Impasto goes straight to multistep.
            sched.counter = 2
    return latents.numpy()


def _torch_noise(noise: NoiseQueue) -> Callable[..., torch.Tensor]:
    def randn_tensor(shape: Any, **_: Any) -> torch.Tensor:
        return torch.from_numpy(noise(tuple(shape)))

    return randn_tensor
