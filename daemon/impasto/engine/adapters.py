"""Sessions with LoRAs and embeddings applied, cached per adapter set.

A request's LoRAs (with weights) and embeddings form its adapter set. The text encoders and the
UNet are reopened with overridden initializers for each new set; the last few sets stay open,
so repeating a request with the same LoRAs costs no new sessions.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from impasto.engine.embeddings import embedding_overrides, fitting, load_embedding
from impasto.engine.lora import LoraFile, load_lora, lora_overrides, unmatched_warning
from impasto.engine.model_folder import ModelFolder
from impasto.engine.onnx_graph import OnnxGraph
from impasto.engine.pipelines.base import UNet
from impasto.engine.providers import ProviderChoice
from impasto.engine.seamless import seamless_path
from impasto.engine.sessions import OrtModel
from impasto.engine.text_encoder import LayerNorm, PromptEncoder
from impasto.engine.tokenizer import ClipTokenizer
from impasto.engine.types import AppliedLora, InvalidRequestError

CACHED_SETS = 2  # adapter sets kept open besides the base sessions
# (path, text encoders' weight, UNet's weight) of each LoRA, the embeddings, the seamless axes
AdapterKey = tuple[tuple[tuple[str, float, float], ...], tuple[str, ...], str]


@dataclass
class Components:
    """The sessions one request runs: text encoders with their tokenizers, and the UNet."""

    prompts: PromptEncoder
    prompts_2: PromptEncoder | None
    unet: UNet
    warnings: list[str] = field(default_factory=list)
    owned: list[OrtModel] = field(default_factory=list)  # opened for this set; closed with it


def final_norm_loader(text_encoder: Path, config: dict[str, object]) -> Callable[[], LayerNorm]:
    """A loader of the text encoder's final layer norm, read from the graph on first use."""

    @cache
    def load() -> LayerNorm:
        graph = OnnxGraph(text_encoder)
        eps = config.get("layer_norm_eps", 1e-5)
        # The export may rename the initializers; the node keeps the module path.
        for node in graph.nodes:
            if "final_layer_norm" in node.name and node.op_type == "LayerNormalization":
                weight, bias = node.inputs[1], node.inputs[2]
                return LayerNorm(
                    graph.array(weight),
                    graph.array(bias),
                    float(eps) if isinstance(eps, (int, float)) else 1e-5,
                )
        raise InvalidRequestError("clip_skip", "the text encoder has no final layer norm")

    return load


def adapter_key(
    loras: Sequence[AppliedLora | tuple[Path, float]], embeddings: list[Path], seamless: str = ""
) -> AdapterKey:
    """The cache key of an adapter set; LoRAs at weight 0 drop out (they change nothing)."""
    applied = [AppliedLora(*lora) for lora in loras]
    active = tuple(
        sorted(
            (str(Path(lora.path).resolve()), float(lora.weight), float(lora.weight_of("unet")))
            for lora in applied
            if lora.weight != 0 or lora.weight_of("unet") != 0
        )
    )
    return active, tuple(sorted(str(Path(p).resolve()) for p in embeddings)), seamless


class AdapterCache:
    """Opens and keeps the sessions of the last few adapter sets of one model folder."""

    def __init__(
        self,
        folder: ModelFolder,
        choice: ProviderChoice,
        base: Components,
        cache_dir: Path | None = None,
    ) -> None:
        self.folder = folder
        self.choice = choice
        self.base = base
        self.cache_dir = cache_dir  # where a seamless UNet of inline weights is written
        self.sets: OrderedDict[AdapterKey, Components] = OrderedDict()
        self.opened = 0  # adapter sets opened so far, for tests and benchmarks

    def get(
        self,
        loras: Sequence[AppliedLora | tuple[Path, float]],
        embeddings: list[Path],
        seamless: str = "",
    ) -> Components:
        """The components for this adapter set (the base ones when it is empty); with
        ``seamless`` ("x", "y" or "xy"), the UNet wraps around along those axes for seamless
        tiling (engine/seamless.py)."""
        key = adapter_key(loras, embeddings, seamless)
        if key == ((), (), ""):
            return self.base
        if key in self.sets:
            self.sets.move_to_end(key)
            return self.sets[key]
        components = self._open(key)
        self.sets[key] = components
        self.opened += 1
        while len(self.sets) > CACHED_SETS:
            _, evicted = self.sets.popitem(last=False)
            for model in evicted.owned:
                model.close()
        return components

    def _open(self, key: AdapterKey) -> Components:
        files = [(load_lora(Path(p)), te, unet) for p, te, unet in key[0]]
        embeddings = [load_embedding(Path(p)) for p in key[1]]
        unmatched: dict[Path, list[str]] = {}
        owned: list[OrtModel] = []
        graphs = {
            component: OnnxGraph(path)
            for component, path, base in (
                ("text_encoder", self.folder.text_encoder, self.base.prompts),
                ("text_encoder_2", self.folder.text_encoder_2, self.base.prompts_2),
            )
            if embeddings and base is not None and path is not None
        }
        embeddings, skipped = fitting(embeddings, graphs)

        def apply(component: str, path: Path, overrides: dict[str, np.ndarray]) -> OrtModel | None:
            weighted = [(file, unet if component == "unet" else te) for file, te, unet in files]
            overrides, missed = lora_overrides(OnnxGraph(path), component, weighted, overrides)
            for (lora, _), name in _owners(weighted, component, missed):
                unmatched.setdefault(lora.path, []).append(name)
            if not overrides:
                return None
            model = OrtModel(path, self.choice, initializers=overrides)
            owned.append(model)
            return model

        encoders: list[PromptEncoder | None] = []
        for component, base in (
            ("text_encoder", self.base.prompts),
            ("text_encoder_2", self.base.prompts_2),
        ):
            path = (
                self.folder.text_encoder
                if component == "text_encoder"
                else self.folder.text_encoder_2
            )
            if base is None or path is None:
                encoders.append(None)
                continue
            tokenizer = base.tokenizer
            overrides: dict[str, np.ndarray] = {}
            if embeddings:
                tokenizer = ClipTokenizer(tokenizer.folder, tokenizer.pad_token)
                overrides = embedding_overrides(graphs[component], component, tokenizer, embeddings)
            model = apply(component, path, overrides)
            encoders.append(
                PromptEncoder(tokenizer, model or base.model, base.final_norm)
                if model or tokenizer is not base.tokenizer
                else base
            )
        unet_path = self.folder.unet
        if key[2]:
            unet_path = seamless_path(unet_path, self.cache_dir, key[2])
        unet_model = apply("unet", unet_path, {})
        if unet_model is None and key[2]:
            unet_model = OrtModel(unet_path, self.choice, self.cache_dir)
            owned.append(unet_model)
        for lora, _, _ in files:
            present = {"unet", "text_encoder"} | (
                {"text_encoder_2"} if self.base.prompts_2 else set()
            )
            for component in set(lora.components) - present:
                unmatched.setdefault(lora.path, []).extend(
                    f"{component}.{m.key}" for m in lora.components[component]
                )
            if lora.unknown:
                unmatched.setdefault(lora.path, []).extend(lora.unknown)
        first, second = encoders
        assert first is not None
        return Components(
            prompts=first,
            prompts_2=second,
            unet=UNet(unet_model) if unet_model else self.base.unet,
            warnings=[
                *skipped,
                *(
                    unmatched_warning(p, keys, nothing_applied=_none_applied(files, p, keys))
                    for p, keys in unmatched.items()
                    if keys
                ),
            ],
            owned=owned,
        )

    def close(self) -> None:
        """Close every adapter set's own sessions."""
        for components in self.sets.values():
            for model in components.owned:
                model.close()
        self.sets.clear()


def _none_applied(files: list[tuple[LoraFile, float, float]], path: Path, keys: list[str]) -> bool:
    """Whether every module of the LoRA file at ``path`` is among its unmatched ``keys``."""
    for lora, _, _ in files:
        if lora.path == path:
            modules = sum(len(found) for found in lora.components.values())
            return len(keys) - len(lora.unknown) >= modules
    return False


def _owners(
    loras: list[tuple[LoraFile, float]], component: str, missed: list[str]
) -> list[tuple[tuple[LoraFile, float], str]]:
    """Which LoRA file each unmatched key of ``component`` came from."""
    found = []
    for key in missed:
        module = key.split(" ")[0]
        for entry in loras:
            if any(m.key == module for m in entry[0].components.get(component, [])):
                found.append((entry, f"{component}.{key}"))
                break
    return found
