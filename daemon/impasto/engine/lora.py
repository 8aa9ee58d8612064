"""LoRA at run time: read kohya, LyCORIS and diffusers/peft files, and make new weights.

Each LoRA module is matched to the ONNX initializer it modifies through the exported graph's
node names, which keep the module path (``/down_blocks.1/.../attn1/to_q/MatMul`` multiplies by
the to_q weight). The new weight is ``W + weight * scale * up @ down`` (or the update of
another kind: LoHa, LoKr, DoRA, ... in lora_kinds.py), transposed where the export stores
``W`` transposed (MatMul keeps ``[in, out]``), and is handed to ONNX Runtime as an
initializer override, so the model files are never rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from impasto.engine import lora_kinds
from impasto.engine.lora_kinds import LOHA_PARTS, LOKR_PARTS, LORA_PARTS, UNSUPPORTED
from impasto.engine.lora_sgm import UNetLayout, sgm_to_diffusers
from impasto.engine.onnx_graph import OnnxGraph
from impasto.engine.types import EngineError
from impasto.formats.safetensors import SafetensorsError, read_safetensors

# Component prefixes of each format -> the model folder part they modify.
_PEFT_COMPONENTS = {
    "unet": "unet",
    "text_encoder": "text_encoder",
    "text_encoder_2": "text_encoder_2",
}
_KOHYA_COMPONENTS = {
    "lora_unet_": "unet",
    "lora_te1_": "text_encoder",
    "lora_te2_": "text_encoder_2",
    "lora_te_": "text_encoder",
}
# A peft model's own prefix (``PeftModel.save_pretrained``), and the first names of diffusers
# modules saved with no component prefix: which component they belong to.
_PEFT_MODEL = "base_model.model."
_BARE_MODULES = {
    "text_model": "text_encoder",
    "down_blocks": "unet",
    "up_blocks": "unet",
    "mid_block": "unet",
    "conv_in": "unet",
    "conv_out": "unet",
    "time_embedding": "unet",
    "add_embedding": "unet",
}
_PEFT_PARTS = {
    "lora_A.weight": "down",
    "lora_B.weight": "up",
    "lora.down.weight": "down",
    "lora.up.weight": "up",
    "lora_magnitude_vector": "magnitude",  # one per output, whatever its shape
    "lora_magnitude_vector.weight": "magnitude",
    "alpha": "alpha",
}
# Every tensor name after a kohya/LyCORIS module path that is read (or named in a refusal).
_KOHYA_PARTS = {
    **LORA_PARTS,
    **{name: name for name in (*LOHA_PARTS, *LOKR_PARTS, "diff", "alpha", "dora_scale")},
    **{name: name for name in UNSUPPORTED},
    "weight": "weight",  # (IA)^3's vector, with on_input
}
_WEIGHT_OPS = ("MatMul", "Gemm", "Conv")
MAX_LISTED = 5  # unmatched keys named in a warning; the rest are counted


class LoraError(EngineError):
    """A LoRA file cannot be used; the message names the file and the reason."""


@dataclass
class LoraModule:
    """One adapted layer: its update (``lora_kinds.delta``) times ``scale`` (alpha / rank),
    and DoRA's magnitude where the file has one."""

    key: str  # the module path as the file spells it (dots for peft, underscores for kohya)
    parts: dict[str, np.ndarray]
    scale: float
    kind: str = "lora"  # lora, loha, lokr or diff (lora_kinds.kind_of)
    magnitude: np.ndarray | None = None

    @property
    def down(self) -> np.ndarray:
        return self.parts["down"]

    @property
    def up(self) -> np.ndarray:
        return self.parts["up"]

    def delta(self) -> np.ndarray:
        """The update with the shape of the layer's torch weight (flat where unknown)."""
        return lora_kinds.delta(self.kind, self.parts, self.scale)

    def update(self, original: np.ndarray) -> np.ndarray:
        """The update of ``original`` (the layer's weight, torch layout) at weight 1."""
        delta = self.delta().reshape(original.shape)
        if self.magnitude is None:
            return delta
        return lora_kinds.decompose(original, delta, self.magnitude)


@dataclass
class LoraFile:
    """A parsed LoRA file: its modules per model component."""

    path: Path
    components: dict[str, list[LoraModule]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)  # keys of no known format


def _peft_configs(metadata: dict[str, str]) -> dict[str, dict[str, object]]:
    """Per-component LoraConfig fields from diffusers' ``lora_adapter_metadata`` header entry.

    diffusers stores them flattened with the component as prefix (``unet.lora_alpha``).
    """
    try:
        data = json.loads(metadata.get("lora_adapter_metadata", "{}"))
    except json.JSONDecodeError:
        return {}
    configs: dict[str, dict[str, object]] = {}
    for key, value in (data if isinstance(data, dict) else {}).items():
        component, _, name = str(key).partition(".")
        if isinstance(value, dict) and not name:
            configs.setdefault(component, {}).update(value)
        elif name:
            configs.setdefault(component, {})[name] = value
    return configs


def load_lora(path: Path) -> LoraFile:
    """Parse a kohya, LyCORIS or diffusers/peft ``.safetensors`` LoRA.

    A module of a kind that cannot be applied (OFT, (IA)^3, ...) is left out and named among
    the file's unknown keys; a file with no module that can be applied is a LoraError naming
    what it holds and what is supported.
    """
    try:
        tensors, metadata = read_safetensors(path)
    except SafetensorsError as exc:  # truncated, not safetensors, unreadable
        raise LoraError(f"LoRA {exc}") from None
    lora = LoraFile(Path(path))
    pairs: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        component, module, part = _split_key(key)
        if component is None:
            lora.unknown.append(key)
            continue
        pairs.setdefault((component, module), {})[part] = value
    configs = _peft_configs(metadata)
    refused: dict[str, int] = {}
    for (component, module), parts in sorted(pairs.items()):
        alpha_value = parts.pop("alpha", None)
        magnitude = parts.pop("dora_scale", None)  # kohya/LyCORIS: [out, 1] or [1, in]
        if "magnitude" in parts:
            magnitude = parts.pop("magnitude").reshape(-1)
        try:
            kind = lora_kinds.kind_of(parts)
        except lora_kinds.KindError as exc:
            lora.unknown.extend(f"{module}.{p}" for p in parts)
            refused[str(exc)] = refused.get(str(exc), 0) + 1
            continue
        rank = lora_kinds.rank_of(kind, parts)
        if rank is None:
            scale = 1.0
        elif alpha_value is not None:
            scale = float(np.asarray(alpha_value).reshape(-1)[0]) / rank
        else:
            config = configs.get(component, {})
            alpha, rank_value = config.get("lora_alpha", rank), config.get("r", rank)
            alpha = float(alpha) if isinstance(alpha, (int, float)) else rank
            scale = alpha / (int(rank_value) if isinstance(rank_value, (int, float)) else rank)
        module_entry = LoraModule(module, parts, scale, kind, magnitude)
        lora.components.setdefault(component, []).append(module_entry)
    if not lora.components:
        raise LoraError(_refusal(Path(path).name, refused))
    return lora


def _refusal(name: str, refused: dict[str, int]) -> str:
    """Why the file ``name`` has nothing to apply, from its modules' reasons and counts."""
    held = "; ".join(
        f"{count} module{'s' if count != 1 else ''}: {reason}" for reason, count in refused.items()
    )
    return (
        f"{name}: no LoRA weights that can be applied here"
        + (f" ({held})" if held else "")
        + f"; supported: {lora_kinds.SUPPORTED}, in kohya/LyCORIS (lora_unet_..., "
        "lora_te_...) or diffusers/peft (unet...lora_A.weight) names"
    )


def refusal_of(name: str, keys: Iterable[str]) -> str | None:
    """Why a LoRA file ``name`` whose tensor names hold only kinds that cannot be applied
    (OFT, (IA)^3, ...) is refused; None when one of its modules can be, or when its names
    are merely not understood (load_lora says more). From the names alone: a header is
    enough."""
    pairs: dict[tuple[str, str], set[str]] = {}
    for key in keys:
        component, module, part = _split_key(key)
        if component is not None:
            pairs.setdefault((component, module), set()).add(part)
    refused: dict[str, int] = {}
    for parts in pairs.values():
        try:
            lora_kinds.kind_of(parts - {"alpha", "dora_scale", "magnitude"})
            return None
        except lora_kinds.KindError as exc:
            refused[str(exc)] = refused.get(str(exc), 0) + 1
    if not any(reason.endswith(lora_kinds.NOT_SUPPORTED) for reason in refused):
        return None
    return _refusal(name, refused)


def _split_key(key: str) -> tuple[str | None, str, str]:
    """(component, module path, part) of one tensor name; part is "down", "up", "alpha",
    "dora_scale" or a LyCORIS tensor name (``hada_w1_a``)."""
    for prefix, component in _KOHYA_COMPONENTS.items():
        if key.startswith(prefix):
            module, _, suffix = key[len(prefix) :].partition(".")
            part = _KOHYA_PARTS.get(suffix)
            return (component, module, part) if part else (None, key, "")
    head, _, rest = key.partition(".")
    peft_component = _PEFT_COMPONENTS.get(head)
    if peft_component is None:  # no component prefix: a peft model's or bare diffusers names
        rest = key.removeprefix(_PEFT_MODEL)
        peft_component = _BARE_MODULES.get(rest.partition(".")[0])
        if peft_component is None:
            return None, key, ""
    rest = rest.removeprefix(_PEFT_MODEL)
    for suffix, part in _PEFT_PARTS.items():
        if rest.endswith("." + suffix):
            return peft_component, rest[: -len(suffix) - 1], part
    return None, key, ""


@dataclass(frozen=True)
class WeightTarget:
    """The initializer a module's weight became, and how the export laid it out."""

    initializer: str
    transposed: bool  # stored [in, out] (MatMul, or Gemm without transB)


def weight_targets(graph: OnnxGraph) -> dict[str, WeightTarget]:
    """Module path (dotted and kohya-underscored) -> the initializer its weight became."""
    targets: dict[str, WeightTarget] = {}
    for node in graph.nodes:
        if node.op_type not in _WEIGHT_OPS or len(node.inputs) < 2:
            continue
        weight = node.inputs[1]
        if weight not in graph.initializers or not node.name.startswith("/"):
            continue
        module = node.name.strip("/").rpartition("/")[0].replace("/", ".")
        if not module:
            continue
        transposed = node.op_type == "MatMul" or (
            node.op_type == "Gemm" and not node.ints.get("transB", 0)
        )
        target = WeightTarget(weight, transposed)
        targets.setdefault(module, target)
        targets.setdefault(module.replace(".", "_"), target)
    return targets


def lora_overrides(
    graph: OnnxGraph,
    component: str,
    loras: list[tuple[LoraFile, float]],
    base: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """New initializers for ``component`` with every LoRA applied, and the unmatched keys.

    ``base`` holds weights already overridden (an enlarged embedding table), updated in place.
    """
    targets = weight_targets(graph)
    layout = UNetLayout.of(targets) if component == "unet" else None
    overrides = base if base is not None else {}
    deltas: dict[str, np.ndarray] = {}
    unmatched: list[str] = []
    for lora, weight in loras:
        for module in lora.components.get(component, []):
            target = targets.get(module.key)
            if target is None and layout is not None:  # kohya's SDXL names (lora_sgm.py)
                target = targets.get(sgm_to_diffusers(module.key, layout) or "")
            if target is None:
                unmatched.append(module.key)
                continue
            shape = graph.initializers[target.initializer].dims
            try:
                delta = module.delta()
            except ValueError as exc:  # tensors that do not multiply (a damaged file)
                unmatched.append(f"{module.key} ({exc})")
                continue
            if delta.size != int(np.prod(shape)):
                unmatched.append(f"{module.key} (shape {delta.shape} does not fit {shape})")
                continue
            if module.magnitude is not None:  # DoRA needs the layer's own weight
                try:
                    delta = module.update(_torch_layout(graph.array(target.initializer), target))
                except lora_kinds.KindError as exc:
                    unmatched.append(f"{module.key} ({exc})")
                    continue
            if target.transposed:
                delta = delta.reshape(delta.shape[0], -1).T
            total = deltas.get(target.initializer)
            scaled = delta.reshape(shape) * np.float32(weight)
            deltas[target.initializer] = scaled if total is None else total + scaled
    for name, delta in deltas.items():
        original = graph.array(name)
        overrides[name] = (original.astype(np.float32) + delta).astype(original.dtype)
    return overrides, unmatched


def _torch_layout(weight: np.ndarray, target: WeightTarget) -> np.ndarray:
    """An initializer as torch holds the layer's weight (``[out, in]`` where it is stored
    ``[in, out]``)."""
    return weight.T if target.transposed and weight.ndim == 2 else weight


def unmatched_warning(path: Path, keys: list[str], nothing_applied: bool = False) -> str:
    """One line naming a LoRA file's keys that matched no weight of the model; when none of
    its modules did, it says the LoRA changed nothing, as one made for another family."""
    listed = ", ".join(keys[:MAX_LISTED])
    more = f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else ""
    if nothing_applied:
        return (
            f"LoRA {path.name} changed nothing: none of its {len(keys)} keys matches a weight "
            f"of this model (made for another model family?): {listed}{more}"
        )
    return f"LoRA {path.name}: {len(keys)} keys matched no weight of this model: {listed}{more}"
