"""Per-image noise: image i of a batch draws from its own generator seeded with seed + i."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from impasto.engine.philox_rng import PhiloxGenerator
from impasto.engine.torch_rng import TorchCpuGenerator
from impasto.engine.vae import VAE_FACTOR
from impasto.wire import SEED_SPACE

if TYPE_CHECKING:
    from impasto.engine.types import GenerationParams

# A drawn seed is 32-bit, as AUTOMATIC1111 draws them: short to note down and to type. Any
# seed of the request's range can be asked for (ComfyUI's larger ones too).
DRAWN_SEEDS = 2**32


def resolve_seed(seed: int | None) -> int:
    """The seed to use: ``seed`` itself, or a fresh random one when it is None or -1."""
    if seed is None or seed == -1:
        return secrets.randbelow(DRAWN_SEEDS)
    return int(seed)


def offset_seed(seed: int, offset: int) -> int:
    """``seed + offset`` (image i of a batch, iteration n of a run), wrapping past the top of
    the seed range so the result is a seed a request may name."""
    return (seed + offset) % SEED_SPACE


RNGS = ("pcg64", "cpu", "nv")
"""Noise sources: numpy's PCG64 (Impasto's own), torch's CPU generator (``cpu``: the noise of
AUTOMATIC1111's "RNG: CPU" and of ComfyUI for the same seed; torch_rng.py), or torch's CUDA one
(``nv``: AUTOMATIC1111's "RNG: NV", the noise its default "GPU" source gives on NVIDIA cards;
philox_rng.py)."""


class Normals(Protocol):
    """A seeded generator of standard normals (numpy's Generator, torch's CPU or CUDA one)."""

    def standard_normal(self, shape: tuple[int, ...], dtype: type = ...) -> np.ndarray: ...


def generator(seed: int, rng: str = "pcg64") -> Normals:
    """A fresh generator seeded with ``seed`` from the noise source ``rng``."""
    if rng == "cpu":
        return TorchCpuGenerator(seed)
    if rng == "nv":
        return PhiloxGenerator(seed)
    if rng != "pcg64":
        raise ValueError(f"unknown noise source {rng!r}; use one of: {', '.join(RNGS)}")
    return np.random.Generator(np.random.PCG64(seed))


def _normal(seed: int, shape: tuple[int, ...], rng: str = "pcg64") -> np.ndarray:
    return generator(seed, rng).standard_normal(shape, dtype=np.float32)


def slerp(t: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spherical interpolation from ``a`` (t=0) to ``b`` (t=1), taken over the whole tensor:
    a blend of two noises that keeps a noise's length, where a straight mix would shrink it."""
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    cos = float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)))
    if cos > 0.9995:  # nearly parallel: the straight line is as good and stays stable
        mixed = (1 - t) * a64 + t * b64
    else:
        omega = np.arccos(np.clip(cos, -1.0, 1.0))
        mixed = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    return mixed.reshape(a.shape).astype(np.float32)


@dataclass(frozen=True)
class Variation:
    """AUTOMATIC1111's variation seed: the starting noise of image i moved toward the noise of
    ``subseed + i`` by ``strength`` (0: the seed's picture; 1: the subseed's start)."""

    subseed: int
    strength: float
    rng: str = "pcg64"

    def blend(self, noise: np.ndarray) -> np.ndarray:
        rows = [
            slerp(self.strength, row, _normal(offset_seed(self.subseed, i), row.shape, self.rng))
            for i, row in enumerate(noise)
        ]
        return np.stack(rows)


def centred(base: np.ndarray, part: np.ndarray) -> np.ndarray:
    """``base`` [C, H, W] with ``part`` [C, h, w] laid over its centre (A1111's resized seed):
    cropped to the centre where it is larger."""
    out = base.copy()
    (_, height, width), (_, h, w) = base.shape, part.shape
    dy, dx = (height - h) // 2, (width - w) // 2
    rows, cols = min(h, height), min(w, width)
    ty, tx, sy, sx = max(dy, 0), max(dx, 0), max(-dy, 0), max(-dx, 0)
    out[:, ty : ty + rows, tx : tx + cols] = part[:, sy : sy + rows, sx : sx + cols]
    return out


class BatchNoise:
    """One generator per batch image (``rng``: PCG64, or torch's CPU one as A1111's "RNG: CPU"
    seeds image i with seed + i), so an image's pixels do not depend on batch size.

    A ``variation`` changes the first draw only (the starting noise), as in A1111; the noise
    ancestral samplers draw later comes from the seed's generators. ``resize_from`` (a latent
    height and width: A1111's "Resize seed from") makes the first draw the seed's noise at that
    size, laid over the centre, so the picture keeps the layout the seed gives at that size.
    ``restart`` starts over from the seeds: a hires pass's starting noise, which A1111 draws
    from a new generator (its ``ImageRNG``) at the pass's size, varied and resized the same way.

    ``seed_delta`` (A1111's "Eta noise seed delta", ENSD): after each starting noise, image i's
    generator starts again from seed + i + delta, so the samplers' later noise is that seed's,
    as A1111 draws it (``rng.ImageRNG.first``)."""

    def __init__(
        self,
        seed: int,
        batch_size: int,
        variation: Variation | None = None,
        resize_from: tuple[int, int] | None = None,
        rng: str = "pcg64",
        seed_delta: int = 0,
    ) -> None:
        self.seeds = [offset_seed(seed, i) for i in range(batch_size)]
        self.rng = rng
        self._generators = [generator(s, rng) for s in self.seeds]
        self.variation = variation
        self.resize_from = resize_from
        self.seed_delta = seed_delta
        self._armed = True

    def restart(self) -> None:
        """Start every image's generator again from its seed, the next draw a starting noise
        (variation and resized seed), as A1111 makes a new ``ImageRNG`` for a hires pass."""
        self._generators = [generator(s, self.rng) for s in self.seeds]
        self._armed = True

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        """Standard-normal float32 noise of ``shape``; row i comes from image i's generator."""
        if shape[0] != len(self._generators):
            raise ValueError(f"noise batch {shape[0]} != {len(self._generators)} images")
        noise = np.stack([g.standard_normal(shape[1:], dtype=np.float32) for g in self._generators])
        armed, self._armed = self._armed, False
        if not armed:
            return noise
        if self.seed_delta:
            delta = self.seed_delta
            self._generators = [generator(offset_seed(s, delta), self.rng) for s in self.seeds]
        small = (shape[1], *self.resize_from) if self.resize_from else tuple(shape[1:])
        if small == tuple(shape[1:]):
            return noise if self.variation is None else self.variation.blend(noise)
        # The seed's own noise at the other size (a fresh generator: its first draw there).
        parts = np.stack([_normal(seed, small, self.rng) for seed in self.seeds])
        if self.variation is not None:
            parts = self.variation.blend(parts)
        return np.stack([centred(row, part) for row, part in zip(noise, parts, strict=True)])


def run_noise(params: GenerationParams) -> BatchNoise:
    """A run's generators: its seed's, one per image, with its variation seed (a random subseed
    drawn here), resized seed, noise source and ENSD."""
    variation = None
    if params.subseed_strength > 0:
        subseed = resolve_seed(params.subseed)
        variation = Variation(subseed, params.subseed_strength, params.rng)
    resize_from = None
    if params.seed_resize_from is not None:
        width, height = params.seed_resize_from
        resize_from = (height // VAE_FACTOR, width // VAE_FACTOR)
    return BatchNoise(
        resolve_seed(params.seed),
        params.batch_size,
        variation,
        resize_from,
        params.rng,
        params.noise_seed_delta,
    )
