"""Read a picture of the shapes world with plain image statistics.

Background = the commonest palette colour in a band just inside the border; the object =
the largest connected region of other colours; its colour = the commonest palette colour
inside it; its shape from the region's hole, extent (area / bounding box) and solidity
(area / convex hull); its position from the centroid. No model is involved, so it can judge one.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

_WORLD_FILE = Path(__file__).resolve().parents[2] / "models" / "shapes_world.py"


def _load_world():
    spec = importlib.util.spec_from_file_location("shapes_world", _WORLD_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("shapes_world", module)
    spec.loader.exec_module(module)
    return module


world = _load_world()
NAMES = list(world.COLOURS)
PALETTE = np.array([world.COLOURS[n] for n in NAMES], dtype=np.float32)


@dataclass(frozen=True)
class Reading:
    """What the analyser sees; `shape` is None when no object stands out."""

    background: str
    colour: str | None
    shape: str | None
    position: str  # "on the left", "on the right", "at the top", "at the bottom" or "centre"
    area: float  # the object's area (holes filled) as a fraction of the picture
    mask: np.ndarray  # the object's pixels

    def matches(self, scene: object) -> dict[str, bool]:
        """Which parts of a parsed prompt (shapes_world.Scene) this reading agrees with."""
        thing = scene.things[0]  # type: ignore[attr-defined]
        return {
            "background": self.background == scene.background,  # type: ignore[attr-defined]
            "colour": self.colour == thing.colour,
            "shape": self.shape == thing.shape,
            "position": thing.position is None or self.position == thing.position,
        }


def labels(image: Image.Image) -> np.ndarray:
    """Each pixel's nearest palette colour, as an index into NAMES."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    distance = ((pixels[:, :, None, :] - PALETTE[None, None]) ** 2).sum(-1)
    return distance.argmin(-1)


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected regions of `mask`, largest first, each as a boolean mask."""
    height, width = mask.shape
    none = height * width
    label = np.where(mask, np.arange(none).reshape(height, width), none)
    while True:
        # Each pixel takes the smallest label among itself and its 4 neighbours in the mask...
        low = label.copy()
        np.minimum(low[1:], label[:-1], out=low[1:])
        np.minimum(low[:-1], label[1:], out=low[:-1])
        np.minimum(low[:, 1:], label[:, :-1], out=low[:, 1:])
        np.minimum(low[:, :-1], label[:, 1:], out=low[:, :-1])
        low = np.where(mask, low, none)
        # ...then jumps to its label's label, which halves long chains each round.
        flat = low.ravel()
        inside = flat < none
        flat[inside] = flat[flat[inside]]
        low = flat.reshape(height, width)
        if np.array_equal(low, label):
            break
        label = low
    ids, counts = np.unique(label[mask], return_counts=True)
    return [label == i for i in ids[np.argsort(-counts, kind="stable")]]


def _shift_max(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2 radius + 1) square."""
    padded = np.pad(mask, radius, constant_values=False)
    out = np.zeros_like(mask)
    height, width = mask.shape
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy : dy + height, dx : dx + width]
    return out


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow `mask` by `radius` pixels."""
    return _shift_max(mask, radius)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Shrink `mask` by `radius` pixels (the image edge counts as inside)."""
    return ~_shift_max(~mask, radius)


def fill_holes(region: np.ndarray) -> np.ndarray:
    """`region` plus the pixels it encloses (not reachable from the border without crossing)."""
    outside = ~region
    padded = np.pad(outside, 1, constant_values=True)
    reach = components(padded)
    border_touching = next(r for r in reach if r[0, 0])
    return ~border_touching[1:-1, 1:-1]


def hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of (x, y) points (Andrew's monotone chain + shoelace)."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) < 3:
        return float(len(pts))

    def half(seq: list) -> list:
        chain: list = []
        for p in seq:
            while len(chain) >= 2:
                (ax, ay), (bx, by) = chain[-2], chain[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:
                    break
                chain.pop()
            chain.append(p)
        return chain

    hull = half(pts)[:-1] + half(pts[::-1])[:-1]
    xs, ys = np.array([p[0] for p in hull]), np.array([p[1] for p in hull])
    return float(abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))) / 2)


def row_corners(filled: np.ndarray) -> np.ndarray:
    """The outer pixel corners of each row of a region: all its convex hull needs."""
    rows = np.nonzero(filled.any(1))[0]
    left = filled[rows].argmax(1)
    right = filled.shape[1] - filled[rows, ::-1].argmax(1)
    return np.concatenate([np.stack([x, rows + dy], 1) for x in (left, right) for dy in (0, 1)])


def classify(region: np.ndarray) -> str:
    """circle, square, triangle, star or ring from a region's geometry."""
    filled = fill_holes(region)
    area = float(filled.sum())
    ys, xs = np.nonzero(filled)
    box = float((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    if 1 - region.sum() / area > 0.12:
        return "ring"
    # Pixel corners, so a filled square's hull is its own area.
    solidity = area / max(hull_area(row_corners(filled)), 1.0)
    extent = area / box
    if solidity < 0.8:
        return "star"
    if extent > 0.88:
        return "square"
    if extent < 0.66:
        return "triangle"
    return "circle"


def position(region: np.ndarray) -> str:
    """Where the centroid is: a side if it is clearly off-centre, else "centre"."""
    height, width = region.shape
    ys, xs = np.nonzero(region)
    dx, dy = xs.mean() / width - 0.5, ys.mean() / height - 0.5
    if max(abs(dx), abs(dy)) < 0.07:
        return "centre"
    if abs(dx) >= abs(dy):
        return "on the left" if dx < 0 else "on the right"
    return "at the top" if dy < 0 else "at the bottom"


def analyse(image: Image.Image) -> Reading:
    """Read one picture (any size; it is looked at as 128x128)."""
    if image.size != (128, 128):
        image = image.convert("RGB").resize((128, 128), Image.Resampling.BOX)
    label = labels(image)
    # A band just inside the edge: VAE decoders often smear the outermost pixels.
    band = label[4:-4, 4:-4]
    border = np.concatenate(
        [band[:4].ravel(), band[-4:].ravel(), band[:, :4].ravel(), band[:, -4:].ravel()]
    )
    background = int(np.bincount(border, minlength=len(NAMES)).argmax())
    foreground = label != background
    # Closing joins a striped shape's bands (stripes may share the background's colour).
    closed = erode(dilate(foreground, 3), 3)
    regions = [r for r in components(closed) if r.sum() >= 40]
    if not regions:
        empty = np.zeros(label.shape, dtype=bool)
        return Reading(NAMES[background], None, None, "centre", 0.0, empty)
    region = regions[0]
    # The inside, away from an outline's edge; a thin shape keeps all of itself.
    inside = erode(region, 3) & foreground
    inside = inside if inside.sum() >= 20 else region & foreground
    colour = int(np.bincount(label[inside], minlength=len(NAMES)).argmax())
    return Reading(
        background=NAMES[background],
        colour=NAMES[colour],
        shape=classify(region),
        position=position(region),
        area=float(fill_holes(region).sum()) / region.size,
        mask=region,
    )
