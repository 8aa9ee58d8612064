"""Image upscalers, as AUTOMATIC1111 runs them: a PIL resize, or an ONNX super-resolution model.

One implementation of "upscale this image with upscaler X by factor s", used by the extras
routes, the native upscale route, hires fix, SD upscale and the impasto-upscale plugin.

A1111's ``Upscaler.upscale`` aims at the size times the factor, floored to a multiple of 8; it
applies the upscaler up to three times while the image is smaller than that (a 4x model asked
for 8x runs twice), then resizes with Lanczos to the exact size.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from impasto.engine.tiles import Grid, TileRow, combine_grid, split_grid
from impasto.engine.types import EngineError

RESIZE_FILTERS = {"lanczos": Image.Resampling.LANCZOS, "nearest": Image.Resampling.NEAREST}
"""The built-in upscalers that resize with a PIL filter of that name."""
NONE = "none"
"""A1111's "None" upscaler: only the final Lanczos resize to the target size."""
BUILTIN = (NONE, *RESIZE_FILTERS)
MAX_PASSES = 3
_PROBE = 16


TILE = 192
TILE_OVERLAP = 8
"""A1111's ESRGAN_tile and ESRGAN_tile_overlap defaults: larger images run tile by tile, so a
model's activations stay small whatever the image size."""


class UpscalerModelError(EngineError):
    """An installed upscaler model cannot be opened or run; the message names it by name."""


@dataclass(frozen=True)
class ModelUpscaler:
    """An installed ONNX super-resolution model: float32 NCHW RGB in [0, 1] in, the same out."""

    path: Path
    tile: int = TILE
    tile_overlap: int = TILE_OVERLAP

    def session(self) -> Any:
        return _sessions.get(self.path)

    @property
    def scale(self) -> int:
        """The model's own factor, read once from a small probe image."""
        return _sessions.scale(self.path)

    def run(self, image: Image.Image) -> Image.Image:
        """One pass of the model over the image, in overlapping tiles when it is larger than
        one (blended as A1111's tiled ESRGAN does)."""
        session = self.session()
        try:
            return self._run(session, image)
        except Exception as exc:
            raise UpscalerModelError(
                f"upscaler {self.path.stem!r} failed on the image: a super-resolution model "
                f"takes float32 RGB of shape 1x3xHxW ({type(exc).__name__})"
            ) from exc

    def _run(self, session: Any, image: Image.Image) -> Image.Image:
        width, height = image.size
        small = width <= self.tile and height <= self.tile
        if small or min(width, height) <= 2 * self.tile_overlap:
            return run_model(session, image)
        grid = split_grid(image, min(self.tile, width), min(self.tile, height), self.tile_overlap)
        factor = 1
        rows = []
        for row in grid.rows:
            tiles = []
            for x, tile in row.tiles:
                out = run_model(session, tile)
                factor = out.width // tile.width
                tiles.append((x * factor, out))
            rows.append(TileRow(row.y * factor, tiles))
        scaled = Grid(
            rows,
            grid.tile_w * factor,
            grid.tile_h * factor,
            width * factor,
            height * factor,
            grid.overlap * factor,
        )
        return combine_grid(scaled)


Upscaler = str | ModelUpscaler
"""A built-in upscaler's id (``none``, ``lanczos``, ``nearest``) or an installed model."""


class _SessionCache:
    """ONNX Runtime sessions of the SR models, opened once per file version (CPU provider)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[tuple[Path, int], Any] = {}
        self._scales: dict[tuple[Path, int], int] = {}

    def _key(self, path: Path) -> tuple[Path, int]:
        return (path.resolve(), path.stat().st_mtime_ns)

    def get(self, path: Path) -> Any:
        import onnxruntime as ort

        key = self._key(path)
        with self._lock:
            if key not in self._sessions:
                for old in [k for k in self._sessions if k[0] == key[0]]:
                    del self._sessions[old]
                options = ort.SessionOptions()
                options.log_severity_level = 3
                try:
                    self._sessions[key] = ort.InferenceSession(
                        str(path), options, providers=["CPUExecutionProvider"]
                    )
                except Exception as exc:  # ORT's messages carry the local path: not repeated
                    raise UpscalerModelError(
                        f"upscaler {path.stem!r} is not a readable ONNX model "
                        f"({type(exc).__name__}); reinstall or remove {path.name}"
                    ) from exc
            return self._sessions[key]

    def scale(self, path: Path) -> int:
        key = self._key(path)
        with self._lock:
            if key in self._scales:
                return self._scales[key]
        probe = run_model(self.get(path), Image.new("RGB", (_PROBE, _PROBE)))
        found = max(1, round(probe.width / _PROBE))
        with self._lock:
            self._scales[key] = found
        return found


_sessions = _SessionCache()


def run_model(session: Any, image: Image.Image) -> Image.Image:
    """One pass of a super-resolution session over an RGB image."""
    from impasto.engine.sessions import releasing_run_options

    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    batch = np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])
    (out,) = session.run(None, {session.get_inputs()[0].name: batch}, releasing_run_options())
    rgb = np.clip(out[0].transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def target_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """A1111's destination: the size times ``scale``, floored to a multiple of 8 (at least 8)."""
    return tuple(max(8, int(side * scale) // 8 * 8) for side in size)  # type: ignore[return-value]


def _one_pass(image: Image.Image, upscaler: Upscaler, scale: float) -> Image.Image:
    if isinstance(upscaler, ModelUpscaler):
        return upscaler.run(image)
    if upscaler in RESIZE_FILTERS:
        size = (int(image.width * scale), int(image.height * scale))
        return image.resize(size, RESIZE_FILTERS[upscaler])
    return image


def upscale_image(
    image: Image.Image,
    upscaler: Upscaler,
    scale: float,
    size: tuple[int, int] | None = None,
) -> Image.Image:
    """``image`` upscaled by ``scale`` (to A1111's size, or to ``size`` when given)."""
    if not isinstance(upscaler, ModelUpscaler) and upscaler not in BUILTIN:
        raise ValueError(f"unknown upscaler {upscaler!r}; one of {', '.join(BUILTIN)} or a model")
    dest = size or target_size(image.size, scale)
    for _ in range(MAX_PASSES):
        before = image.size
        image = _one_pass(image, upscaler, scale)
        if image.size == before or (image.width >= dest[0] and image.height >= dest[1]):
            break
    if image.size != dest:
        image = image.resize(dest, Image.Resampling.LANCZOS)
    return image


def upscale_to(image: Image.Image, upscaler: Upscaler, width: int, height: int) -> Image.Image:
    """``image`` at exactly ``width`` x ``height``, as A1111's ``resize_image`` mode 0 does it:
    the upscaler by the larger of the two ratios, then Lanczos to the exact size."""
    scale = max(width / image.width, height / image.height)
    if scale > 1.0 and upscaler != NONE:
        image = upscale_image(image, upscaler, scale)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image
