"""PyTorch's CPU normal generator in numpy: the noise AUTOMATIC1111 draws with "RNG: CPU" and
ComfyUI draws for every seed, so a seed starts from the same noise here as there.

torch seeds a 32-bit Mersenne Twister (``mt19937``, seeded as C++'s ``init_genrand`` with the
seed's low 32 bits) and fills a float tensor of 16 or more values in two passes: first every
value is a uniform float of 24 random bits, then each block of 16 becomes 16 normals by the
Box-Muller transform, the block's first eight values giving the radii and its last eight the
angles. A length that is not a multiple of 16 draws 16 more uniforms for its last 16 values
(overlapping the last whole block). numpy's MT19937 produces the same 32-bit stream once its
key is set the same way. torch computes the logarithm, sine and cosine in float32 with vector
approximations; these are exact in float64, so values agree to about 1e-6.
"""

from __future__ import annotations

import numpy as np

MT_KEY_WORDS = 624
BLOCK = 16
_UNIFORM_BITS = 24


def _mersenne_twister(seed: int) -> np.random.MT19937:
    """numpy's MT19937 in the state C++'s ``mt19937(seed)`` starts from."""
    key = np.empty(MT_KEY_WORDS, dtype=np.uint32)
    word = seed & 0xFFFFFFFF
    key[0] = word
    for i in range(1, MT_KEY_WORDS):
        word = (1812433253 * (word ^ (word >> 30)) + i) & 0xFFFFFFFF
        key[i] = word
    generator = np.random.MT19937()
    generator.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": MT_KEY_WORDS}}
    return generator


def _box_muller(uniforms: np.ndarray) -> np.ndarray:
    """Blocks of 16 uniforms as 16 normals: radii from the first 8, angles from the last 8."""
    blocks = uniforms.reshape(-1, BLOCK).astype(np.float64)
    half = BLOCK // 2
    radius = np.sqrt(-2.0 * np.log(1.0 - blocks[:, :half]))
    angle = 2.0 * np.pi * blocks[:, half:]
    normals = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return normals.astype(np.float32).ravel()


class TorchCpuGenerator:
    """``torch.Generator("cpu").manual_seed(seed)`` as far as ``torch.randn`` reads it."""

    def __init__(self, seed: int) -> None:
        self._bits = _mersenne_twister(seed)

    def _uniforms(self, count: int) -> np.ndarray:
        raw = self._bits.random_raw(count) & ((1 << _UNIFORM_BITS) - 1)
        return (raw.astype(np.float64) * 2.0**-_UNIFORM_BITS).astype(np.float32)

    def standard_normal(self, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        """``torch.randn(shape, generator=...)``: the next normals of this generator."""
        count = int(np.prod(shape))
        if count < BLOCK:
            raise ValueError(f"torch's CPU normals need at least {BLOCK} values, not {count}")
        uniforms = self._uniforms(count)
        whole = count - count % BLOCK
        out = np.empty(count, dtype=np.float32)
        out[:whole] = _box_muller(uniforms[:whole])
        if count % BLOCK:
            out[count - BLOCK :] = _box_muller(self._uniforms(BLOCK))
        return out.reshape(shape).astype(dtype, copy=False)
