"""The weight updates of each adapter kind a LoRA file may hold, in numpy.

Civitai's LoRAs are mostly kohya's (``lora_down``/``lora_up``, also on 3x3 convs: LoCon) and
LyCORIS' LoHa (``hada_w1_a`` ...), LoKr (``lokr_w1`` ...) and full differences (``diff``), any
of them with DoRA's magnitude (``dora_scale``). Each kind turns its tensors into ``delta``, the
update of the layer's torch weight at weight 1, as LyCORIS and ComfyUI compute it; DoRA then
rescales the updated weight (``decompose``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# The tensors of each kind, by their names after the module path.
LORA_PARTS = {"lora_down.weight": "down", "lora_up.weight": "up"}
LOHA_PARTS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2")
LOKR_PARTS = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")
# Kinds that cannot be applied here, by a tensor name that marks them.
UNSUPPORTED = {
    "on_input": "(IA)^3",
    "oft_blocks": "OFT",
    "oft_diag": "OFT",
    "oft_R": "BOFT",
    "boft_R": "BOFT",
    "a1.weight": "GLoRA",
    "a2.weight": "GLoRA",
    "b1.weight": "GLoRA",
    "b2.weight": "GLoRA",
    "lora_mid.weight": "LoCon with Tucker decomposition (lora_mid)",
    "diff_b": "full difference of a bias (diff_b)",
    "w_norm": "a norm layer's difference (w_norm)",
    "b_norm": "a norm layer's difference (b_norm)",
}
NOT_SUPPORTED = "is not supported"
SUPPORTED = "LoRA, LoCon, LoHa, LoKr, full difference (diff), each with or without DoRA"


class KindError(ValueError):
    """A module's tensors do not make a whole update of a known kind."""


def kind_of(parts: Iterable[str]) -> str:
    """``lora``, ``loha``, ``lokr`` or ``diff``: which update the tensors named ``parts`` make
    (alpha and DoRA's magnitude aside); KindError if none."""
    names = set(parts)
    if {"down", "up"} <= names:
        return "lora"
    if {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"} <= names:
        return "loha"
    has_w1 = "lokr_w1" in names or {"lokr_w1_a", "lokr_w1_b"} <= names
    has_w2 = "lokr_w2" in names or {"lokr_w2_a", "lokr_w2_b"} <= names
    if has_w1 and has_w2:
        return "lokr"
    if "diff" in names:
        return "diff"
    unsupported = sorted({UNSUPPORTED[n] for n in names if n in UNSUPPORTED})
    if unsupported:
        raise KindError(f"{', '.join(unsupported)} {NOT_SUPPORTED}")
    raise KindError(f"incomplete ({', '.join(sorted(names))} only)")


def rank_of(kind: str, parts: dict[str, np.ndarray]) -> int | None:
    """The rank ``alpha`` is divided by; None where the kind is not scaled by alpha."""
    if kind == "lora":
        return int(parts["down"].shape[0])
    if kind == "loha":
        return int(parts["hada_w1_b"].shape[0])
    if kind == "lokr":  # LyCORIS: the rank of a factor made of two matrices
        for name in ("lokr_w1_b", "lokr_w2_b"):
            if name in parts:
                return int(parts[name].shape[0])
    return None


def _f32(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)


def _tucker(core: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """LyCORIS' ``rebuild_tucker``: ``einsum("i j k l, j r, i p -> p r k l")``."""
    return np.einsum("ijkl,jr,ip->prkl", _f32(core), _f32(right), _f32(left))


def delta(kind: str, parts: dict[str, np.ndarray], scale: float) -> np.ndarray:
    """The update of the layer's torch weight (``[out, in]`` or ``[out, in, k, k]``, or the
    flat ``[out, in * k * k]`` where the file does not say the kernel) at weight 1."""
    if kind == "lora":
        down, up = _f32(parts["down"]), _f32(parts["up"])
        rank = down.shape[0]
        out = up.reshape(up.shape[0], rank) @ down.reshape(rank, -1)
        return (out * np.float32(scale)).reshape((up.shape[0], *down.shape[1:]))
    if kind == "loha":
        halves = []
        for side in ("1", "2"):
            a, b = _f32(parts[f"hada_w{side}_a"]), _f32(parts[f"hada_w{side}_b"])
            core = parts.get(f"hada_t{side}")
            halves.append(_tucker(core, a, b) if core is not None else a @ b.reshape(len(b), -1))
        return halves[0] * halves[1] * np.float32(scale)
    if kind == "lokr":
        w1 = _f32(parts["lokr_w1"]) if "lokr_w1" in parts else None
        if w1 is None:
            w1 = _f32(parts["lokr_w1_a"]) @ _f32(parts["lokr_w1_b"])
        w2 = _f32(parts["lokr_w2"]) if "lokr_w2" in parts else None
        if w2 is None and "lokr_t2" in parts:
            w2 = _tucker(parts["lokr_t2"], parts["lokr_w2_a"], parts["lokr_w2_b"])
        elif w2 is None:
            w2_b = _f32(parts["lokr_w2_b"])
            w2 = (_f32(parts["lokr_w2_a"]) @ w2_b.reshape(len(w2_b), -1)).reshape(
                (-1, *w2_b.shape[1:])
            )
        if w2.ndim == 4:  # a conv: the first factor spreads over the kernel as 1x1
            w1 = w1.reshape((*w1.shape, 1, 1))
        return np.kron(w1, w2) * np.float32(scale)
    return _f32(parts["diff"])


def decompose(original: np.ndarray, update: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """DoRA: the update that takes ``original`` (torch layout) to ``magnitude`` times the
    direction of ``original + update``, normed per output channel when ``magnitude`` is laid
    out per output (``[out, 1]``: LyCORIS' default; peft's flattened), else per input channel
    (``[1, in]``: older LyCORIS), as ComfyUI tells them apart."""
    merged = original.astype(np.float32) + update.reshape(original.shape)
    magnitude = _f32(magnitude)
    flat = merged.reshape(merged.shape[0], -1)
    if magnitude.ndim and magnitude.shape[0] == merged.shape[0] and magnitude.size == len(flat):
        norm = np.linalg.norm(flat, axis=1).reshape((-1,) + (1,) * (merged.ndim - 1))
        scale = magnitude.reshape(norm.shape)
    elif magnitude.size == merged.shape[1]:
        columns = np.swapaxes(merged, 0, 1).reshape(merged.shape[1], -1)
        norm = np.linalg.norm(columns, axis=1).reshape((1, -1) + (1,) * (merged.ndim - 2))
        scale = magnitude.reshape(norm.shape)
    else:
        raise KindError(
            f"its DoRA magnitude has {magnitude.size} values for a {merged.shape} weight"
        )
    norm = norm + np.finfo(np.float32).eps
    return merged * (scale / norm) - original.astype(np.float32)
