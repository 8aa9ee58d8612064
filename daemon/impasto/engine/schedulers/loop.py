"""Samplers written k-diffusion style: one short function that owns its loop over sigmas.

A loop function ``loop(x, sigmas, noise)`` is a generator. Where k-diffusion calls
``denoised = model(x, sigma)``, it writes ``x, denoised = yield x, sigma``: the caller runs
the UNet at ``sigma`` on ``x`` and sends back ``x`` (which a task may have adjusted, as
inpainting does) with the model's clean-sample prediction. It returns the final latents.

``LoopSampler`` drives such a function through the step-by-step ``Scheduler`` protocol the
pipelines use: a dry run on the schedule finds the sigma of every UNet call beforehand, so
``timesteps`` and progress totals are known; img2img and the refiner start the loop on the
tail of the sigmas (``start_at``). A loop may change ``x`` before its first yield (sigma
churn adds noise there): ``prepare`` starts it and hands that ``x`` to the UNet call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from .base import NoiseFn
from .k_base import SigmaSampler
from .sigmas import k_denoised, k_schedule, sigma_to_t, train_sigmas

Loop = Generator[tuple[np.ndarray, float], tuple[np.ndarray, np.ndarray], np.ndarray]
"""A running sampler: yields (x, sigma) per model call, is sent (x, denoised), returns x."""
LoopFn = Callable[[np.ndarray, np.ndarray, NoiseFn], Loop]


def model_calls(loop: LoopFn, sigmas: np.ndarray) -> list[float]:
    """The sigma of each model call ``loop`` makes over ``sigmas`` (a dry run on zeros)."""

    def no_noise(shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)

    calls: list[float] = []
    run = loop(np.zeros(1, dtype=np.float32), sigmas, no_noise)
    try:
        x, sigma = next(run)
        while True:
            calls.append(float(sigma))
            x, sigma = run.send((x, np.zeros_like(x)))
    except StopIteration:
        return calls


def ancestral_step(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """(sigma_down, sigma_up): where to step deterministically, and how much noise to add."""
    if not eta:
        return sigma_to, 0.0
    up = min(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    return (sigma_to**2 - up**2) ** 0.5, up


class LoopSampler(SigmaSampler):
    """Runs the generator ``loop`` one UNet call per ``step``; subclasses name the function."""

    adaptive: ClassVar[bool] = False
    """Whether the loop picks its sigmas as it runs: ``timesteps`` then grows call by call."""
    diffusers_start: ClassVar[bool] = False
    """Start from diffusers' noise level (scaled top sigma under "leading" spacing) rather than
    k-diffusion's (the top sigma), for the samplers compared with diffusers."""

    @staticmethod
    def loop(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn) -> Loop:
        """The sampler: yields (x, sigma) per model call, is sent (x, denoised), returns x."""
        raise NotImplementedError

    def _loop(self, resumed: bool = False) -> LoopFn:
        """``loop`` with this sampler's ``eta`` where it adds noise, and its sigma churn spread
        over the steps of the run laid out last (``resumed``: see ``resume_at``)."""
        loop: Callable[..., Loop] = type(self).loop
        options: dict[str, Any] = {}
        if self.eta is not None:
            options["eta"] = self.eta
        if self.churn is not None:
            options["churn"] = replace(self.churn, steps=self._churn_steps, resumed=resumed)
        return functools.partial(loop, **options) if options else loop

    def path(self, sigmas: np.ndarray) -> np.ndarray:
        """The sigmas the loop walks for a schedule's ``sigmas`` (Restart inserts its jumps)."""
        return sigmas

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Lay out one timestep and sigma per model call, found by a dry run of the loop."""
        steps_t, steps_sigma, ac = k_schedule(self.config, num_inference_steps, self.schedule)
        self.step_sigmas, self._step_timesteps = steps_sigma, steps_t
        self._log_train = np.log(train_sigmas(ac))
        self.path_sigmas = self.path(steps_sigma)
        self._churn_steps = len(self.path_sigmas) - 1
        # A step's calls depend on its own sigmas only, so per-position counts add up.
        loop = self._loop()
        per_position = [
            len(model_calls(loop, self.path_sigmas[p : p + 2]))
            for p in range(len(self.path_sigmas) - 1)
        ]
        self.position_calls = np.concatenate([[0], np.cumsum(per_position)]).astype(int)
        self.sigmas, self.timesteps = self._lay_out(self.path_sigmas)
        # The start is at the schedule's top sigma: a churned first call is above it.
        if self.diffusers_start:
            self._after_schedule(float(self.path_sigmas.max()))
        else:
            self.init_noise_sigma = self._start_scale(float(self.path_sigmas[0]))
            self._reset()

    def _lay_out(self, path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sigmas (ending at 0) and timesteps of the calls the loop makes along ``path``."""
        calls = np.array(model_calls(self._loop(), path))
        if self.adaptive:
            calls = calls[:1]
        timesteps = sigma_to_t(calls, self._log_train)
        for j, sigma in enumerate(calls):  # the schedule's own sigmas keep its exact timesteps
            exact = np.flatnonzero(self.step_sigmas[:-1] == sigma)
            if exact.size:
                timesteps[j] = self._step_timesteps[exact[0]]
        return np.append(calls, 0.0), timesteps.astype(np.float64)

    def _reset(self) -> None:
        self._run: Loop | None = None
        self._next = -1
        self._start: tuple[int, int] | None = None
        self._resumed = -1

    def _position(self, index: int) -> int | None:
        """The path position a loop started at call ``index`` begins at; None inside a step."""
        if self._start is not None and self._start[0] == index:
            return self._start[1]
        position = int(np.searchsorted(self.position_calls, index))
        if position >= len(self.path_sigmas) - 1 or self.position_calls[position] != index:
            return None
        return position

    def start_at(self, step: int) -> int:
        """Lay out a run that starts at schedule step ``step``: the loop on the sigmas' tail."""
        if step >= len(self.step_sigmas) - 1:
            return len(self.timesteps)
        # Restart's path is rebuilt from the schedule: allow for rounding at the top.
        position = int(np.argmax(self.path_sigmas <= self.step_sigmas[step] * (1 + 1e-6)))
        first = int(self.position_calls[position])
        # Samplers that plan over the whole range (DPM fast) call elsewhere on a tail, and
        # churn is spread over the tail's steps, as A1111 runs img2img.
        self._churn_steps = len(self.path_sigmas) - 1 - position
        sigmas, timesteps = self._lay_out(self.path_sigmas[position:])
        self.sigmas = np.concatenate([self.sigmas[:first], sigmas])
        self.timesteps = np.concatenate([self.timesteps[:first], timesteps])
        self._start = (first, position)
        return first

    def _running_at(self, index: int) -> bool:
        """Whether the loop is running and its next model call is call ``index``."""
        return self._run is not None and index == self._next

    def resume_at(self, index: int) -> None:
        """The loop that starts at call ``index`` takes its first latents as they come."""
        self._resumed = index

    def prepare(self, sample: np.ndarray, index: int, noise: NoiseFn) -> np.ndarray:
        """Start the loop where a run begins at call ``index``; the x its first call sees."""
        if self._running_at(index):
            return sample
        position = self._position(index)
        if position is None:
            return sample  # inside a step: ``step`` waits for the next one
        self._run = self._loop(index == self._resumed)(sample, self.path_sigmas[position:], noise)
        x, _ = next(self._run)
        self._next = index
        return x.astype(sample.dtype, copy=False)

    def add_noise(self, original: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        """Noise clean latents to the level x has when handed in at call ``index``: a loop
        starting there is at its path's sigma (``prepare`` may raise it), a running one at
        the call's."""
        position = None if self._running_at(index) else self._position(index)
        sigma = self.path_sigmas[position] if position is not None else self.sigmas[index]
        return original + noise * float(sigma)

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """Feed the model's output at call ``index`` to the loop; return x at the next call."""
        if not self._running_at(index):
            # A caller that skips ``prepare``: right for every loop without churn.
            sample = self.prepare(sample, index, noise)
        run = self._run if self._running_at(index) else None
        if run is None:
            # Started inside a step (a refiner switch): its start is gone; wait for the next.
            return sample
        sigma = float(self.sigmas[index])
        denoised = k_denoised(model_output, sample, sigma, self.config.prediction_type)
        if self.config.clip_sample:
            denoised = np.clip(denoised, -1.0, 1.0)
        self._next = index + 1
        try:
            x, sigma_next = run.send((sample, denoised))
            if self.adaptive:
                self._follow(index + 1, [sigma_next])
        except StopIteration as done:
            x, self._run = done.value, None
            if self.adaptive:
                self._follow(index + 1, [])
        return x.astype(sample.dtype, copy=False)

    def _follow(self, index: int, calls: list[float]) -> None:
        """Make ``calls`` the last model calls, from ``index`` on (an adaptive loop's choice)."""
        sigmas, timesteps = np.array(calls, dtype=np.float64), np.zeros(len(calls))
        if calls:
            timesteps = sigma_to_t(sigmas, self._log_train)
        self.sigmas = np.concatenate([self.sigmas[:index], sigmas, [0.0]])
        self.timesteps = np.concatenate([self.timesteps[:index], timesteps])
