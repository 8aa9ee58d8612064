"""Torch modules back from an ONNX export of impasto-shapes, checked against the ONNX outputs.

train_shapes.py `--from-onnx FOLDER` uses this to run its last stage on a committed export
instead of first retraining the stages before it (about 80 minutes on 2 CPU cores).

optimum's export keeps most initializers under their state-dict names; the rest (Linear weights
stored transposed for MatMul, GroupNorm's scale and shift as Mul/Add constants of shape C,1,1)
get numbered names in the order the graph uses them. They are matched to the unnamed
parameters in the order a forward pass first reaches their modules, and every module is then
run beside its ONNX graph: a mismatch is an error, never a silently wrong model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from onnx import numpy_helper
from transformers import CLIPTextConfig, CLIPTextModel

# Largest difference allowed between the recovered module and its ONNX graph.
TOLERANCE = 1e-4


def _first_use(model: torch.nn.Module, run: Callable[[], object]) -> dict[str, int]:
    """Module name -> the order in which a forward pass first reaches it."""
    seen: dict[str, int] = {}

    def hook_for(name: str) -> Callable[..., None]:
        def hook(*_: object) -> None:
            seen.setdefault(name, len(seen))

        return hook

    hooks = [
        module.register_forward_pre_hook(hook_for(name)) for name, module in model.named_modules()
    ]
    with torch.no_grad():
        run()
    for hook in hooks:
        hook.remove()
    return seen


def _load(
    model: torch.nn.Module, path: Path, run: Callable[[], object], prefixes: tuple[str, ...] = ("",)
) -> None:
    """Set the parameters of `model` under `prefixes` from the ONNX initializers at `path`."""
    graph = onnx.load(str(path)).graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    state = {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}
    loaded = {k: torch.from_numpy(arrays[k].copy()) for k in state if k in arrays}
    order = _first_use(model, run)
    unnamed = sorted(
        (k for k in state if k not in arrays),
        key=lambda k: (order[k.rsplit(".", 1)[0]], k.endswith("bias")),
    )
    numbered = sorted(
        (n for n in arrays if n not in state and re.search(r"::\w+_\d+$", n)),
        key=lambda n: int(n.rsplit("_", 1)[1]),
    )
    if len(unnamed) != len(numbered):
        raise ValueError(f"{path}: {len(unnamed)} unnamed parameters, {len(numbered)} numbered")
    for key, name in zip(unnamed, numbered, strict=True):
        array = arrays[name].T if "MatMul" in name else arrays[name]
        if array.size != state[key].numel():
            raise ValueError(f"{path}: {name} {array.shape} does not fit {key}")
        loaded[key] = torch.from_numpy(array.reshape(state[key].shape).copy())
    model.load_state_dict(loaded, strict=False)


def _check(name: str, ours: torch.Tensor, path: Path, feeds: dict) -> None:
    """Refuse `ours` unless it matches the first output of the ONNX graph at `path`."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(None, feeds)[0]
    diff = float(np.abs(ours.detach().numpy() - theirs).max())
    if diff > TOLERANCE:
        raise ValueError(f"{name}: recovered module differs from its ONNX graph by {diff:.2e}")


def _config(folder: Path, part: str) -> dict:
    return json.loads((folder / part / "config.json").read_text(encoding="utf-8"))


@torch.no_grad()
def unet(folder: Path) -> UNet2DConditionModel:
    """The UNet of the export in `folder`."""
    model = UNet2DConditionModel.from_config(_config(folder, "unet")).eval()
    width = model.config.cross_attention_dim
    sample, context = torch.randn(2, 4, 16, 16), torch.randn(2, 77, width)
    t = torch.tensor([500.0, 500.0])
    path = folder / "unet" / "model.onnx"
    _load(model, path, lambda: model(sample, t, context))
    feeds = {
        "sample": sample.numpy(),
        "timestep": np.array(500.0, np.float32),
        "encoder_hidden_states": context.numpy(),
    }
    _check("unet", model(sample, t, context).sample, path, feeds)
    return model


@torch.no_grad()
def text_encoder(folder: Path) -> CLIPTextModel:
    """The CLIP text tower of the export in `folder`."""
    fields = _config(folder, "text_encoder")
    config = CLIPTextConfig(
        **{k: v for k, v in fields.items() if k not in ("architectures", "export_model_type")}
    )
    model = CLIPTextModel(config).eval()
    ids = torch.randint(0, config.vocab_size, (2, 77))
    path = folder / "text_encoder" / "model.onnx"
    _load(model, path, lambda: model(ids))
    _check("text_encoder", model(ids).last_hidden_state, path, {"input_ids": ids.numpy()})
    return model


@torch.no_grad()
def vae(folder: Path) -> AutoencoderKL:
    """The AutoencoderKL of the export in `folder` (encoder and decoder)."""
    model = AutoencoderKL.from_config(_config(folder, "vae_decoder")).eval()
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    latents = torch.randn(1, 4, 8, 8)
    encoder = folder / "vae_encoder" / "model.onnx"
    _load(model, encoder, lambda: model.encode(image), ("encoder.", "quant_conv."))
    decoder = folder / "vae_decoder" / "model.onnx"
    _load(model, decoder, lambda: model.decode(latents), ("decoder.", "post_quant_conv."))
    # optimum's encoder returns the posterior's parameters (quant_conv's output).
    moments = model.quant_conv(model.encoder(image))
    _check("vae_encoder", moments, encoder, {"sample": image.numpy()})
    _check("vae_decoder", model.decode(latents).sample, decoder, {"latent_sample": latents.numpy()})
    return model
