"""LoCon, LoHa, LoKr and DoRA files in kohya/LyCORIS names (as Civitai has them) against peft's
own implementations of each, layer by layer on the tiny SD model's UNet."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from peft import LoHaConfig, LoKrConfig, LoraConfig, inject_adapter_in_model
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.numpy import save_file

from impasto.engine.lora import LoraError, load_lora, lora_overrides, weight_targets
from impasto.engine.onnx_graph import OnnxGraph
from impasto.services.detect import detect_file

from .conftest import SD_TINY, small
from .families_oracle import noise, torch_pipeline

# A linear layer, a 3x3 conv (LoCon), a 1x1 conv and a linear layer of another shape.
TARGETS = ["to_q", "conv1", "proj_in", "ff.net.2"]
ALPHA = 3.0
CONFIGS = {
    "locon": LoraConfig(r=2, lora_alpha=ALPHA, target_modules=TARGETS, init_lora_weights=False),
    "dora": LoraConfig(
        r=2, lora_alpha=ALPHA, target_modules=TARGETS, init_lora_weights=False, use_dora=True
    ),
    "loha": LoHaConfig(r=2, alpha=ALPHA, target_modules=TARGETS, init_weights=False),
    "lokr": LoKrConfig(r=2, alpha=ALPHA, target_modules=TARGETS, init_weights=False),
}
KOHYA_NAMES = {"lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight"}


@pytest.fixture(scope="module")
def torch_unet() -> Any:
    return torch_pipeline("sd-tiny").unet


@pytest.fixture(scope="module")
def graph() -> OnnxGraph:
    return OnnxGraph(SD_TINY / "unet" / "model.onnx")


def _peft_adapter(unet: Any, kind: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(peft's tensors by name, each adapted module's weight update as peft merges it)."""
    torch.manual_seed(11)
    adapted = copy.deepcopy(unet)
    inject_adapter_in_model(CONFIGS[kind], adapted, adapter_name="default")
    state = {k: v.detach().numpy() * 0.3 for k, v in get_peft_model_state_dict(adapted).items()}
    # Modest updates, as trained ones are; and peft merges these very tensors.
    set_peft_model_state_dict(adapted, {k: torch.from_numpy(v) for k, v in state.items()})
    expected = {}
    for name, module in adapted.named_modules():
        if hasattr(module, "base_layer") and "default" in getattr(module, "scaling", {}):
            before = module.base_layer.weight.detach().clone()
            module.merge(adapter_names=["default"])
            expected[name] = (module.base_layer.weight.detach() - before).numpy()
    assert len(expected) >= 4 * len(TARGETS) - 4, "peft must adapt every kind of layer"
    return state, expected


def _kohya(state: dict[str, np.ndarray], dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """peft's tensors in kohya/LyCORIS names: lora_unet_<module_path>.<part>, an alpha each,
    DoRA's magnitude as LyCORIS' ``dora_scale`` ([out, 1, ...])."""
    tensors, modules = {}, set()
    for key, value in state.items():
        for part in (*KOHYA_NAMES, "lora_magnitude_vector"):
            if key.endswith("." + part):
                module = key[: -len(part) - 1]
                break
        else:
            module, _, part = key.rpartition(".")
        name = "lora_unet_" + module.replace(".", "_")
        modules.add(name)
        if part == "lora_magnitude_vector":
            value = value.reshape((-1,) + (1,) * (value.ndim - 1 if value.ndim > 1 else 1))
            tensors[f"{name}.dora_scale"] = value
        else:
            tensors[f"{name}.{KOHYA_NAMES.get(part, part)}"] = value.astype(dtype)
    for name in modules:
        tensors[f"{name}.alpha"] = np.array(ALPHA, dtype=dtype)
    return tensors


def _ours(graph: OnnxGraph, path: Path, weight: float = 1.0) -> dict[str, np.ndarray]:
    """Each adapted module's weight update (torch layout) by its dotted path."""
    targets = weight_targets(graph)
    overrides, unmatched = lora_overrides(graph, "unet", [(load_lora(path), weight)])
    assert unmatched == []
    updates = {}
    for module, target in targets.items():
        if "." in module and target.initializer in overrides:
            change = overrides[target.initializer] - graph.array(target.initializer)
            updates[module] = change.T if target.transposed else change
    return updates


def _compare(ours: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert set(ours) == set(expected)
    for module, update in expected.items():
        scale = np.abs(update).max()
        assert scale > 1e-6, f"{module}: the reference update is 0 and proves nothing"
        np.testing.assert_allclose(
            ours[module].reshape(update.shape), update, atol=1e-5 * scale + 1e-7, err_msg=module
        )


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_lycoris_kinds_match_peft(
    torch_unet: Any, graph: OnnxGraph, tmp_path: Path, kind: str
) -> None:
    state, expected = _peft_adapter(torch_unet, kind)
    path = tmp_path / f"{kind}.safetensors"
    save_file(_kohya(state), str(path))
    _compare(_ours(graph, path), expected)


def test_peft_named_dora_matches_peft(torch_unet: Any, graph: OnnxGraph, tmp_path: Path) -> None:
    state, expected = _peft_adapter(torch_unet, "dora")
    path = tmp_path / "dora-peft.safetensors"
    # diffusers' save_lora_weights records the LoraConfig: alpha 3 over rank 2.
    metadata = {"lora_adapter_metadata": json.dumps({"unet.r": 2, "unet.lora_alpha": ALPHA})}
    save_file({f"unet.{k}": v for k, v in state.items()}, str(path), metadata=metadata)
    _compare(_ours(graph, path), expected)


def test_peft_model_prefix_is_read(torch_unet: Any, graph: OnnxGraph, tmp_path: Path) -> None:
    # PeftModel.save_pretrained's adapter_model.safetensors: base_model.model.<module path>.
    state, _ = _peft_adapter(torch_unet, "locon")
    path = tmp_path / "adapter_model.safetensors"
    save_file({f"base_model.model.{k}": v for k, v in state.items()}, str(path))
    lora = load_lora(path)
    assert lora.unknown == []
    assert set(lora.components) == {"unet"}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_files_match(
    torch_unet: Any, graph: OnnxGraph, tmp_path: Path, dtype: str
) -> None:
    state, _ = _peft_adapter(torch_unet, "loha")
    tensors = {k: torch.from_numpy(v).to(getattr(torch, dtype)) for k, v in _kohya(state).items()}
    from safetensors.torch import save_file as save_torch

    path = tmp_path / f"loha-{dtype}.safetensors"
    save_torch(tensors, str(path))
    widened = {k: v.float().numpy() for k, v in tensors.items()}
    ours = _ours(graph, path)
    exact = tmp_path / "widened.safetensors"
    save_file(widened, str(exact))
    _compare(ours, _ours(graph, exact))


def test_dora_per_input_channel(graph: OnnxGraph, tmp_path: Path) -> None:
    # Older LyCORIS saved dora_scale as [1, in] and normed each input column (ComfyUI's rule).
    rng = np.random.default_rng(3)
    module = "down_blocks_1_attentions_0_transformer_blocks_0_ff_net_2"
    target = weight_targets(graph)[module]
    original = graph.array(target.initializer).T  # [out 32, in 128]
    down, up = rng.normal(size=(2, 128)), rng.normal(size=(32, 2))
    magnitude = rng.uniform(0.5, 1.5, size=(1, 128))
    path = tmp_path / "dora-in.safetensors"
    prefix = f"lora_unet_{module}"
    save_file(
        {
            f"{prefix}.lora_down.weight": down.astype(np.float32),
            f"{prefix}.lora_up.weight": up.astype(np.float32),
            f"{prefix}.dora_scale": magnitude.astype(np.float32),
        },
        str(path),
    )
    weight = torch.from_numpy(original).double()
    merged = weight + torch.from_numpy(up @ down)
    norm = merged.norm(dim=0, keepdim=True)
    expected = (merged * torch.from_numpy(magnitude) / norm - weight).numpy()
    ours = _ours(graph, path, weight=0.5)
    np.testing.assert_allclose(_one(ours), 0.5 * expected, atol=1e-4)


def _one(updates: dict[str, np.ndarray]) -> np.ndarray:
    assert len(updates) == 1
    return next(iter(updates.values()))


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"weight": (32,), "on_input": ()}, "(IA)^3"),
        ({"oft_blocks": (4, 8, 8)}, "OFT"),
        ({"oft_R": (4, 8, 8)}, "BOFT"),
        ({"lora_down.weight": (2, 32)}, "incomplete"),
    ],
)
def test_unsupported_kinds_are_refused_by_name(
    tmp_path: Path, keys: dict[str, tuple[int, ...]], named: str
) -> None:
    module = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
    path = tmp_path / "odd.safetensors"
    save_file({f"{module}.{k}": np.ones(s, np.float32) for k, s in keys.items()}, str(path))
    with pytest.raises(LoraError) as caught:
        load_lora(path)
    message = str(caught.value)
    assert "odd.safetensors" in message and named in message and "LoHa" in message
    assert str(tmp_path) not in message


def test_unsupported_modules_beside_supported_ones_are_warned(pipe: Any, tmp_path: Path) -> None:
    module = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_"
    rng = np.random.default_rng(4)
    path = tmp_path / "mixed.safetensors"
    save_file(
        {
            f"{module}q.lora_down.weight": rng.normal(size=(2, 32)).astype(np.float32),
            f"{module}q.lora_up.weight": rng.normal(size=(32, 2)).astype(np.float32),
            f"{module}k.oft_blocks": np.ones((4, 8, 8), np.float32),
        },
        str(path),
    )
    images = pipe.generate(small(steps=1, loras=[(path, 1.0)]), latents=noise(9))
    assert len(images[0].warnings) == 1
    assert "to_k.oft_blocks" in images[0].warnings[0]


def test_a_lora_of_another_family_says_it_changed_nothing(pipe: Any, tmp_path: Path) -> None:
    # kohya's SDXL names (second text encoder, sgm UNet blocks) on an SD 1.x model.
    rng = np.random.default_rng(5)
    path = tmp_path / "xl.safetensors"
    te2 = "lora_te2_text_model_encoder_layers_0_mlp_fc1"
    unet = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    save_file(
        {
            f"{te2}.lora_down.weight": rng.normal(size=(2, 32)).astype(np.float32),
            f"{te2}.lora_up.weight": rng.normal(size=(64, 2)).astype(np.float32),
            f"{unet}.lora_down.weight": rng.normal(size=(2, 640)).astype(np.float32),
            f"{unet}.lora_up.weight": rng.normal(size=(640, 2)).astype(np.float32),
        },
        str(path),
    )
    images = pipe.generate(small(steps=1, loras=[(path, 1.0)]), latents=noise(10))
    assert len(images[0].warnings) == 1
    assert "xl.safetensors changed nothing" in images[0].warnings[0]


def test_install_detection_reads_lycoris_and_refuses_what_cannot_apply(tmp_path: Path) -> None:
    module = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
    loha = tmp_path / "loha.safetensors"
    save_file(
        {f"{module}.hada_w{s}_{p}": np.ones((2, 2), np.float32) for s in "12" for p in "ab"},
        str(loha),
    )
    assert detect_file(loha).type == "lora"
    oft = tmp_path / "oft.safetensors"
    save_file({f"{module}.oft_blocks": np.ones((4, 8, 8), np.float32)}, str(oft))
    with pytest.raises(ValueError, match=r"oft\.safetensors: .*OFT is not supported.*LoKr"):
        detect_file(oft)


def test_full_difference_and_unsplit_lokr(graph: OnnxGraph, tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    module = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
    diff = rng.normal(size=(32, 32)).astype(np.float32)
    w1, w2 = rng.normal(size=(4, 4)), rng.normal(size=(8, 8))
    path = tmp_path / "diff.safetensors"
    save_file({f"{module}.diff": diff}, str(path))
    np.testing.assert_allclose(_one(_ours(graph, path, weight=0.5)), 0.5 * diff, atol=1e-5)
    # LyCORIS: a LoKr whose factors are both whole matrices is not scaled by its alpha.
    save_file(
        {
            f"{module}.lokr_w1": w1.astype(np.float32),
            f"{module}.lokr_w2": w2.astype(np.float32),
            f"{module}.alpha": np.array(4.0, np.float32),
        },
        str(path),
    )
    np.testing.assert_allclose(_one(_ours(graph, path)), np.kron(w1, w2), atol=1e-5)
