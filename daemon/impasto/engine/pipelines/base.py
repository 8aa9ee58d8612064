"""What every task shares: the UNet call with guidance, and the denoising loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from impasto.engine.deepcache import DeepCacheError, split_unet
from impasto.engine.noise import BatchNoise
from impasto.engine.preview import Previewer
from impasto.engine.schedulers.base import Scheduler
from impasto.engine.sdxl import Conditioning
from impasto.engine.sessions import OrtModel
from impasto.engine.types import CancelToken, EngineError, Progress, ProgressCallback
from impasto.engine.vae import LATENT_CHANNELS, VAE_FACTOR

ModelInputFn = Callable[[np.ndarray, int], np.ndarray]
"""Builds the UNet's ``sample`` from scaled latents at a step (inpaint adds mask channels)."""
AfterStepFn = Callable[[np.ndarray, int], np.ndarray]
"""Adjusts the latents after a step (inpaint with a regular UNet blends the kept region)."""


@dataclass
class FeatureCache:
    """DeepCache over one run: every ``interval``-th UNet evaluation runs the whole UNet and
    remembers its deep feature; the evaluations between run only the shallow path with it."""

    interval: int
    evaluations: int = 0
    features: dict[object, np.ndarray] = field(default_factory=dict)

    def next_reuses(self) -> bool:
        """Whether the next evaluation reuses the remembered feature (and count it)."""
        reuse = self.evaluations % self.interval != 0 and bool(self.features)
        self.evaluations += 1
        return reuse


class UNet:
    """The UNet session with classifier-free guidance; cond and uncond share one call if it can."""

    def __init__(self, model: OrtModel) -> None:
        self.model = model
        self.sample = model.input("sample")
        self.timestep = model.input("timestep")
        self.hidden = model.input("encoder_hidden_states")
        channels = self.sample.shape[1] if len(self.sample.shape) == 4 else None
        self.in_channels = channels if isinstance(channels, int) else LATENT_CHANNELS
        self.dynamic_batch = self.sample.is_dynamic(0)
        self.calls = 0
        self.shallow: OrtModel | None = None  # DeepCache's shallow path, once opened
        self.feature = ""

    def enable_deep_cache(self) -> None:
        """Open the DeepCache split: the full graph (which replaces the plain one) and the
        shallow one. EngineError when the UNet's graph cannot be split."""
        if self.shallow is not None:
            return
        try:
            split = split_unet(self.model.path, self.model.cache_dir)
        except DeepCacheError as exc:
            problem = f"DeepCache (cache_interval) cannot run on this model: {exc}"
            raise EngineError(problem) from exc
        # The full graph replaces the plain one: close it first, so the UNet's weights are
        # never in memory twice (3.4 GB each for SD 1.5 in fp32).
        plain = self.model
        plain.close()
        try:
            full = plain.reopen(split.full)
        except EngineError:
            self.model = plain.reopen(plain.path)
            raise
        self.model = full  # it gives the plain output too: a failure below leaves it working
        self.shallow = plain.reopen(split.shallow)
        self.feature = split.feature

    @property
    def is_inpaint(self) -> bool:
        """Whether the UNet takes mask and masked-image latents as 5 extra channels."""
        return self.in_channels == 9

    @property
    def dtype_name(self) -> str:
        """``fp16`` or ``fp32``, from the UNet's ``sample`` input."""
        return "fp16" if self.sample.dtype == np.float16 else "fp32"

    def _timestep(self, t: float, batch: int) -> np.ndarray:
        # Exported UNets take a scalar float timestep; older exports a [1] or [batch] vector.
        value = np.asarray(t, dtype=self.timestep.dtype)
        if len(self.timestep.shape) == 0:
            return value
        size = batch if self.timestep.is_dynamic(0) or self.timestep.shape[0] == batch else 1
        return np.full((size,), value, dtype=self.timestep.dtype)

    def run(
        self,
        sample: np.ndarray,
        t: float,
        hidden: Any,
        extra: dict[str, Any] | None = None,
        cache: FeatureCache | None = None,
        reuse: bool = False,
        slot: int = 0,
    ) -> np.ndarray:
        """One UNet call; ``extra`` holds inputs such as SDXL's text_embeds and time_ids.

        With ``cache`` (DeepCache), ``reuse`` runs the shallow path on the feature remembered
        for ``slot``; otherwise the full pass runs and remembers it.
        """
        self.calls += 1
        feeds = {
            "sample": sample,
            "timestep": self._timestep(t, sample.shape[0]),
            "encoder_hidden_states": hidden,
            **(extra or {}),
        }
        if self.dynamic_batch or sample.shape[0] == 1:
            return self._call(feeds, cache, reuse, slot)
        rows = []  # a UNet exported with a fixed batch of 1
        for i in range(sample.shape[0]):
            row_feeds = {
                "sample": sample[i : i + 1],
                "timestep": self._timestep(t, 1),
                "encoder_hidden_states": np.asarray(hidden)[i : i + 1],
                **{k: np.asarray(v)[i : i + 1] for k, v in (extra or {}).items()},
            }
            rows.append(self._call(row_feeds, cache, reuse, (slot, i)))
        return np.concatenate(rows)

    def _call(
        self, feeds: dict[str, Any], cache: FeatureCache | None, reuse: bool, key: object
    ) -> np.ndarray:
        if cache is None or self.shallow is None:
            return self.model.run(feeds).astype(np.float32)
        if reuse:
            shallow_feeds = {k: v for k, v in feeds.items() if k in self.shallow.inputs}
            shallow_feeds[self.feature] = cache.features[key]
            return self.shallow.run(shallow_feeds).astype(np.float32)
        index = self.model.output_index((self.feature,))
        out, cache.features[key] = self.model.run_outputs(feeds, (0, index))
        return out.astype(np.float32)


@dataclass
class Guidance:
    """Text conditioning for a batch, ready for the UNet (uploaded once on GPU providers).

    ``cond`` has a row per part of the prompt: one, or each part of an A1111 ``AND`` prompt
    with its weight in ``weights``, guided as A1111's composable diffusion does:
    ``uncond + scale * sum(weight * (part - uncond))``.
    """

    unet: UNet
    cond: np.ndarray
    uncond: np.ndarray | None
    scale: float
    batch: int
    extra_cond: dict[str, np.ndarray] = field(default_factory=dict)
    extra_uncond: dict[str, np.ndarray] | None = None
    cache: FeatureCache | None = None  # DeepCache's state, when the request asks for it
    weights: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.cond) or (len(self.weights) > 1 and self.uncond is None):
            raise EngineError("a prompt of several parts needs a weight each and an uncond")
        hidden = self._stack(self.cond, self.uncond)
        # Constant over the run: uploading it once keeps it on the device between steps.
        self._hidden = self.unet.model.to_device("encoder_hidden_states", hidden)
        self._hidden_host = hidden
        uncond_extra = self.extra_uncond or {}
        self._extra_host = {
            name: self._stack(value, uncond_extra.get(name) if self.uncond is not None else None)
            for name, value in self.extra_cond.items()
        }

    def _stack(self, cond: np.ndarray, uncond: np.ndarray | None) -> np.ndarray:
        """[uncond x batch, part 1 x batch, part 2 x batch, ...]."""
        rows = np.repeat(cond, self.batch, axis=0)  # each part's rows stay together
        if uncond is None:
            return rows
        return np.concatenate([np.repeat(uncond, self.batch, axis=0), rows])

    def _run(
        self,
        sample: np.ndarray,
        t: float,
        hidden: Any,
        part: slice | None = None,
        reuse: bool = False,
        slot: int = 0,
    ) -> Any:
        extra = {k: v if part is None else v[part] for k, v in self._extra_host.items()}
        if self.cache is not None:
            return self.unet.run(sample, t, hidden, extra or None, self.cache, reuse, slot)
        if not extra:
            return self.unet.run(sample, t, hidden)
        return self.unet.run(sample, t, hidden, extra)

    def predict(self, sample: np.ndarray, t: float, skip_uncond: bool = False) -> np.ndarray:
        """The guided model output for ``sample`` at timestep ``t`` (``skip_uncond``: without
        the negative prompt's pass, ``predict_with_uncond``)."""
        return self.predict_with_uncond(sample, t, self.scale, skip_uncond)[0]

    def predict_with_uncond(
        self, sample: np.ndarray, t: float, scale: float, skip_uncond: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """The output guided at ``scale``, and the unconditional one (the same without CFG).

        ``skip_uncond`` leaves the negative prompt's pass out, as A1111 does below its
        "Negative Guidance minimum sigma": the first part of the prompt stands in for it and
        the guidance scale is 1, so one part gives its own output.
        """
        if skip_uncond and self.uncond is not None:
            return self._without_uncond(sample, t)
        reuse = self.cache.next_reuses() if self.cache is not None else False
        if self.uncond is None:
            # A fixed-batch UNet is fed row by row, which slices the host copy.
            hidden = self._hidden if self.unet.dynamic_batch else self._hidden_host
            out = self._run(sample, t, hidden, reuse=reuse)
            return out, out
        groups = len(self.weights) + 1  # uncond, then each part
        if self.unet.dynamic_batch:
            every = self._run(np.concatenate([sample] * groups), t, self._hidden, reuse=reuse)
            outs = [every[g * self.batch : (g + 1) * self.batch] for g in range(groups)]
        else:
            outs = []
            for g in range(groups):
                rows = slice(g * self.batch, (g + 1) * self.batch)
                outs.append(self._run(sample, t, self._hidden_host[rows], rows, reuse, g))
        return self._combine(outs[0], outs[1:], scale), outs[0]

    def _combine(self, base: np.ndarray, parts: list[np.ndarray], scale: float) -> np.ndarray:
        """``base + scale * sum(weight * (part - base))`` (classifier-free guidance)."""
        if self.weights == (1.0,):
            return base + scale * (parts[0] - base)
        return base + scale * sum(
            w * (out - base) for w, out in zip(self.weights, parts, strict=True)
        )

    def _without_uncond(self, sample: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """The prompt's parts alone, combined at scale 1 around the first (A1111's stand-in
        for the skipped negative pass); that first part's output is the unconditional one."""
        if self.cache is not None:
            raise EngineError("skipping the negative prompt's pass does not go with DeepCache")
        parts = len(self.weights)
        rows = slice(self.batch, None)
        if self.unet.dynamic_batch:
            every = self._run(np.concatenate([sample] * parts), t, self._hidden_host[rows], rows)
            outs = [every[g * self.batch : (g + 1) * self.batch] for g in range(parts)]
        else:
            outs = []
            for g in range(1, parts + 1):
                group = slice(g * self.batch, (g + 1) * self.batch)
                outs.append(self._run(sample, t, self._hidden_host[group], group))
        return self._combine(outs[0], outs, 1.0), outs[0]


Pair = tuple[Conditioning, Conditioning | None]
"""A prompt's conditioning and its negative's (None without CFG)."""


@dataclass
class PromptSchedule:
    """Guidance that changes between steps (A1111's prompt editing): ``entries`` holds each
    stretch's last step and its conditioning, made into a ``Guidance`` by ``build`` when the
    stretch begins (only the current one is kept: its hidden states are repeated per image and
    may sit on the device)."""

    entries: list[tuple[int, Pair]]
    build: Callable[[Pair], Guidance]
    calls_per_step: float = 1.0
    """UNet calls per sampler step (2 for Heun): steps count sampler steps, not calls."""
    _current: tuple[Pair, Guidance] | None = None

    def at(self, call: int) -> Guidance:
        """The guidance of the pass's UNet call ``call`` (counted from the pass's first); the
        step it belongs to counts from 0, as A1111's sampler counts them."""
        step = int(call / self.calls_per_step + 1e-9)
        pair = next((p for end, p in self.entries if step <= end), self.entries[-1][1])
        if self._current is None or self._current[0] is not pair:
            self._current = (pair, self.build(pair))
        return self._current[1]


@dataclass(frozen=True)
class UncondSkip:
    """The UNet calls that leave out the negative prompt's pass, as AUTOMATIC1111 skips it:
    every call in the first ``early`` fraction of the run ("Ignore negative prompt during early
    sampling"), and below ``min_sigma`` every other call, or every call with ``every_call``
    ("Negative Guidance minimum sigma"). ``sigma_of`` gives a call's sigma from its timestep."""

    sigma_of: Callable[[float], float]
    min_sigma: float = 0.0
    every_call: bool = False
    early: float = 0.0

    def skips(self, call: int, total: int, t: float) -> bool:
        """Whether call ``call`` of a run of ``total`` (counted from 0) at timestep ``t`` skips
        the negative prompt (A1111 counts its denoiser's calls the same way)."""
        if self.early and call / total <= self.early:
            return True
        below = self.min_sigma > 0 and self.sigma_of(t) < self.min_sigma
        return below and (self.every_call or call % 2 == 1)


@dataclass
class Denoise:
    """One denoising run: sampler, guidance (or a prompt schedule), noise, the task's hooks."""

    scheduler: Scheduler
    guidance: Guidance | PromptSchedule
    noise: BatchNoise
    model_input: ModelInputFn | None = None
    after_step: AfterStepFn | None = None
    progress: ProgressCallback | None = None
    cancel: CancelToken | None = None
    preview_every: int = 0
    previewer: Previewer | None = None
    uncond_skip: UncondSkip | None = None

    def run(
        self, latents: np.ndarray, start: int, end: int | None = None, origin: int | None = None
    ) -> np.ndarray:
        """Denoise ``latents`` from ``timesteps[start]`` up to ``end`` (default: the end).

        Progress counts UNet calls from ``origin`` (default ``start``) over the whole schedule,
        so a run split between two models (base and refiner) reports one sequence.
        """
        origin = start if origin is None else origin
        i = start
        # Re-read each step: an adaptive sampler (DPM adaptive) adds its calls as it goes.
        while i < (len(self.scheduler.timesteps) if end is None else end):
            if self.cancel is not None:
                self.cancel.raise_if_cancelled()
            latents = self.scheduler.prepare(latents, i, self.noise)
            scaled = self.scheduler.scale_model_input(latents, i)
            sample = self.model_input(scaled, i) if self.model_input else scaled
            t = float(self.scheduler.timesteps[i])
            guidance = self.guidance
            if isinstance(guidance, PromptSchedule):
                guidance = guidance.at(i - origin)
            calls = len(self.scheduler.timesteps) - origin
            skip = self.uncond_skip is not None and self.uncond_skip.skips(i - origin, calls, t)
            if self.scheduler.cfg_pp_divisor:
                # CFG++: guidance scaled down, and the sampler steps along the uncond output.
                scale = guidance.scale / self.scheduler.cfg_pp_divisor
                output, uncond = guidance.predict_with_uncond(sample, t, scale, skip)
                self.scheduler.uncond_output = uncond
            else:
                output = guidance.predict(sample, t, skip)
            latents = self.scheduler.step(output, i, latents, self.noise)
            if self.after_step is not None:
                latents = self.after_step(latents, i)
            i += 1
            if self.progress is not None:
                step, total = i - origin, len(self.scheduler.timesteps) - origin
                preview = None
                if self.preview_every > 0 and self.previewer and step % self.preview_every == 0:
                    preview = self.previewer(latents)
                self.progress(Progress(step=step, total=total, preview=preview))
        return latents


def latent_shape(batch: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The shape of a batch's latents for an image size."""
    return (batch, LATENT_CHANNELS, height // VAE_FACTOR, width // VAE_FACTOR)


@dataclass
class TaskPlan:
    """How a task starts the loop: first latents and index, hooks, and a pixel post-step."""

    latents: np.ndarray
    start: int
    model_input: ModelInputFn | None = None
    after_step: AfterStepFn | None = None
    finish: Callable[[list[Image.Image]], list[Image.Image]] | None = None


def guidance_embedding(scale: float, dim: int) -> np.ndarray:
    """[1, dim]: the sinusoidal embedding of ``scale - 1`` an LCM-distilled UNet takes."""
    w = np.float32((scale - 1.0) * 1000.0)
    half = dim // 2
    freqs = np.exp(np.arange(half, dtype=np.float32) * -(np.log(10000.0) / (half - 1)))
    emb = w * freqs.astype(np.float32)
    out = np.concatenate([np.sin(emb), np.cos(emb)])
    if dim % 2:
        out = np.concatenate([out, np.zeros(1, dtype=np.float32)])
    return out[None].astype(np.float32)
