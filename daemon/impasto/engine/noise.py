"""Per-image noise: image i of a batch draws from its own generator seeded with seed + i."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np

MAX_SEED = 2**32 - 1  # the range AUTOMATIC1111 and most UIs show and accept


def resolve_seed(seed: int | None) -> int:
    """The seed to use: ``seed`` itself, or a fresh random one when it is None or -1."""
    if seed is None or seed == -1:
        return secrets.randbelow(MAX_SEED + 1)
    return int(seed)


def _normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.Generator(np.random.PCG64(seed)).standard_normal(shape, dtype=np.float32)


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

    def blend(self, noise: np.ndarray) -> np.ndarray:
        rows = [
            slerp(self.strength, row, _normal(self.subseed + i, row.shape))
            for i, row in enumerate(noise)
        ]
        return np.stack(rows)


class BatchNoise:
    """One PCG64 generator per batch image, so an image's pixels do not depend on batch size.

    A ``variation`` changes the first draw only (the starting noise), as in A1111; the noise
    ancestral samplers draw later comes from the seed's generators. ``vary_next`` applies it
    once more: a hires pass's starting noise, which A1111 varies too."""

    def __init__(self, seed: int, batch_size: int, variation: Variation | None = None) -> None:
        self.seeds = [seed + i for i in range(batch_size)]
        self._generators = [np.random.Generator(np.random.PCG64(s)) for s in self.seeds]
        self.variation = variation
        self._variation = variation

    def vary_next(self) -> None:
        """Blend the next draw with this noise's variation (if any) as the first one was."""
        self._variation = self.variation

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        """Standard-normal float32 noise of ``shape``; row i comes from image i's generator."""
        if shape[0] != len(self._generators):
            raise ValueError(f"noise batch {shape[0]} != {len(self._generators)} images")
        rows = [g.standard_normal(shape[1:], dtype=np.float32) for g in self._generators]
        noise = np.stack(rows)
        variation, self._variation = self._variation, None
        return noise if variation is None else variation.blend(noise)
