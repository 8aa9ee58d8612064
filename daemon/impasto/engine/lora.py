"""LoRA at run time: read kohya and diffusers/peft files, and turn them into new weights.

Each LoRA module is matched to the ONNX initializer it modifies through the exported graph's
node names, which keep the module path (``/down_blocks.1/.../attn1/to_q/MatMul`` multiplies by
the to_q weight). The new weight is ``W + weight * scale * up @ down``, transposed where the
export stores ``W`` transposed (MatMul keeps ``[in, out]``), and is handed to ONNX Runtime as
an initializer override, so the model files are never rewritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from impasto.engine.lora_sgm import UNetLayout, sgm_to_diffusers
from impasto.engine.onnx_graph import OnnxGraph
from impasto.engine.types import EngineError
from impasto.formats.safetensors import read_safetensors

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
_KOHYA_PARTS = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}
_WEIGHT_OPS = ("MatMul", "Gemm", "Conv")
MAX_LISTED = 5  # unmatched keys named in a warning; the rest are counted


class LoraError(EngineError):
    """A LoRA file cannot be used; the message names the file and the reason."""


@dataclass
class LoraModule:
    """One adapted layer: ``up @ down`` times ``scale`` (alpha / rank) is its update."""

    key: str  # the module path as the file spells it (dots for peft, underscores for kohya)
    down: np.ndarray
    up: np.ndarray
    scale: float

    def delta(self) -> np.ndarray:
        """``scale * up @ down`` with the shape of the layer's torch weight."""
        rank = self.down.shape[0]
        up = self.up.reshape(self.up.shape[0], rank).astype(np.float32)
        down = self.down.reshape(rank, -1).astype(np.float32)
        out = (up @ down) * np.float32(self.scale)
        return out.reshape((self.up.shape[0], *self.down.shape[1:]))


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
    """Parse a kohya or diffusers/peft ``.safetensors`` LoRA."""
    tensors, metadata = read_safetensors(path)
    lora = LoraFile(Path(path))
    pairs: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        component, module, part = _split_key(key)
        if component is None:
            lora.unknown.append(key)
            continue
        pairs.setdefault((component, module), {})[part] = value
    configs = _peft_configs(metadata)
    for (component, module), parts in sorted(pairs.items()):
        if "down" not in parts or "up" not in parts:
            lora.unknown.extend(f"{module}.{p}" for p in parts if p != "alpha")
            continue
        rank = parts["down"].shape[0]
        if "alpha" in parts:
            alpha = float(np.asarray(parts["alpha"]).reshape(-1)[0])
        else:
            config = configs.get(component, {})
            alpha_value, rank_value = config.get("lora_alpha", rank), config.get("r", rank)
            alpha = float(alpha_value) if isinstance(alpha_value, (int, float)) else rank
            rank = int(rank_value) if isinstance(rank_value, (int, float)) else rank
        module_entry = LoraModule(module, parts["down"], parts["up"], alpha / rank)
        lora.components.setdefault(component, []).append(module_entry)
    if not lora.components:
        raise LoraError(f"{path}: no LoRA weights found (expected kohya or diffusers/peft keys)")
    return lora


def _split_key(key: str) -> tuple[str | None, str, str]:
    """(component, module path, "down" | "up" | "alpha") of one tensor name."""
    for prefix, component in _KOHYA_COMPONENTS.items():
        if key.startswith(prefix):
            module, _, suffix = key[len(prefix) :].partition(".")
            part = _KOHYA_PARTS.get(suffix)
            return (component, module, part) if part else (None, key, "")
    head, _, rest = key.partition(".")
    peft_component = _PEFT_COMPONENTS.get(head)
    if peft_component is None:
        return None, key, ""
    for suffix, part in (
        (".lora_A.weight", "down"),
        (".lora_B.weight", "up"),
        (".lora.down.weight", "down"),
        (".lora.up.weight", "up"),
        (".alpha", "alpha"),
    ):
        if rest.endswith(suffix):
            return peft_component, rest[: -len(suffix)], part
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
            delta = module.delta()
            if target.transposed:
                delta = delta.reshape(delta.shape[0], -1).T
            shape = graph.initializers[target.initializer].dims
            if delta.size != int(np.prod(shape)):
                unmatched.append(f"{module.key} (shape {delta.shape} does not fit {shape})")
                continue
            total = deltas.get(target.initializer)
            scaled = delta.reshape(shape) * np.float32(weight)
            deltas[target.initializer] = scaled if total is None else total + scaled
    for name, delta in deltas.items():
        original = graph.array(name)
        overrides[name] = (original.astype(np.float32) + delta).astype(original.dtype)
    return overrides, unmatched


def unmatched_warning(path: Path, keys: list[str]) -> str:
    """One line naming a LoRA file's keys that matched no weight of the model."""
    listed = ", ".join(keys[:MAX_LISTED])
    more = f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else ""
    return f"LoRA {path.name}: {len(keys)} keys matched no weight of this model: {listed}{more}"
