"""Per-image noise: image i of a batch draws from its own generator seeded with seed + i."""

from __future__ import annotations

import secrets

import numpy as np

MAX_SEED = 2**32 - 1  # the range AUTOMATIC1111 and most UIs show and accept


def resolve_seed(seed: int | None) -> int:
    """The seed to use: ``seed`` itself, or a fresh random one when it is None or -1."""
    if seed is None or seed == -1:
        return secrets.randbelow(MAX_SEED + 1)
    return int(seed)


class BatchNoise:
    """One PCG64 generator per batch image, so an image's pixels do not depend on batch size."""

    def __init__(self, seed: int, batch_size: int) -> None:
        self.seeds = [seed + i for i in range(batch_size)]
        self._generators = [np.random.Generator(np.random.PCG64(s)) for s in self.seeds]

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        """Standard-normal float32 noise of ``shape``; row i comes from image i's generator."""
        if shape[0] != len(self._generators):
            raise ValueError(f"noise batch {shape[0]} != {len(self._generators)} images")
        rows = [g.standard_normal(shape[1:], dtype=np.float32) for g in self._generators]
        return np.stack(rows)
