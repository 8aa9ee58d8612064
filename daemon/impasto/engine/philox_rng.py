"""The normal noise torch draws on an NVIDIA GPU, on the CPU in numpy: AUTOMATIC1111's "RNG: NV",
which reproduces its default "GPU" source's noise of NVIDIA cards anywhere.

CUDA's generator is Philox 4x32 with 10 rounds (Salmon et al. 2011, "Parallel random numbers:
as easy as 1, 2, 3"). Value i of a draw runs it on the counter (offset, 0, i, 0) under the key
made of the seed's low and high 32 bits, and turns the first two of the four words it gives into
one normal by the Box-Muller transform: uniforms u and v in (0, 1), each word times 2^-32 plus
half of that (v also times 2 pi), then sqrt(-2 ln u) sin(v). Each draw of a generator moves the
offset on by one, as A1111's emulation does.
"""

from __future__ import annotations

import numpy as np

MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
"""Philox 4x32's round multipliers."""
KEY_STEPS = (0x9E3779B9, 0xBB67AE85)
"""What the key words gain between rounds (the golden ratio's and sqrt(3) - 1's bits)."""
ROUNDS = 10
_MASK = np.uint64(0xFFFFFFFF)
# The float32 constants CUDA's Box-Muller uses: 2^-32, and 2^-32 times 2 pi.
_TO_UNIT = float(np.float32(2.3283064e-10))
_TO_ANGLE = float(np.float32(2.3283064e-10 * 6.2831855))


def philox(counter: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox 4x32-10 of ``counter`` (4 x n uint32 words) under ``key``: 4 x n uint32 words."""
    words = [row.astype(np.uint64) for row in counter]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for round_ in range(ROUNDS):
        if round_:
            k0 = (k0 + np.uint64(KEY_STEPS[0])) & _MASK
            k1 = (k1 + np.uint64(KEY_STEPS[1])) & _MASK
        low_product = words[0] * np.uint64(MULTIPLIERS[0])
        high_product = words[2] * np.uint64(MULTIPLIERS[1])
        words = [
            (high_product >> np.uint64(32)) ^ words[1] ^ k0,
            high_product & _MASK,
            (low_product >> np.uint64(32)) ^ words[3] ^ k1,
            low_product & _MASK,
        ]
    return np.stack(words).astype(np.uint32)


class PhiloxGenerator:
    """A seeded generator of the normals torch draws on CUDA (``torch.randn(..., 'cuda')``)."""

    def __init__(self, seed: int) -> None:
        seed &= 0xFFFFFFFFFFFFFFFF
        self.key = (seed & 0xFFFFFFFF, seed >> 32)
        self.offset = 0

    def standard_normal(self, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        """``shape``'s worth of standard normals; the next draw continues at the next offset."""
        count = int(np.prod(shape))
        counter = np.zeros((4, count), dtype=np.uint32)
        counter[0] = self.offset & 0xFFFFFFFF
        counter[2] = np.arange(count, dtype=np.uint32)
        self.offset += 1
        words = philox(counter, self.key)
        u = words[0] * _TO_UNIT + _TO_UNIT / 2
        v = words[1] * _TO_ANGLE + _TO_ANGLE / 2
        normals = np.sqrt(-2.0 * np.log(u)) * np.sin(v)
        return normals.astype(np.float32).astype(dtype, copy=False).reshape(shape)
