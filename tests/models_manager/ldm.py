"""Write a diffusers folder back out as one original-layout (LDM) .safetensors checkpoint.

Single-file checkpoints on model sites use the original Stable Diffusion key names
(``model.diffusion_model.input_blocks.1.0.in_layers.0.weight``, ``first_stage_model.``,
``cond_stage_model.transformer.``). The tests need one built from the tiny pipeline, so this
renames the tiny diffusers weights the other way round. numpy only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _resnet(rest: str, names: dict[str, str]) -> str:
    head, _, tail = rest.partition(".")
    return f"{names.get(head, head)}.{tail}"


def unet_key(key: str, per_block: int, up_attention: set[int]) -> str:
    """One diffusers UNet key in LDM naming (without the ``model.diffusion_model.`` prefix)."""
    for new, old in UNET_FIXED.items():
        if key.startswith(new + "."):
            return old + key[len(new) :]
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = 1 + block * (per_block + 1) + layer
        if kind == "resnets":
            return f"input_blocks.{index}.0.{_resnet(rest, RESNET)}"
        return f"input_blocks.{index}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{1 + int(m[1]) * (per_block + 1) + per_block}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2], RESNET)}"
    if m := re.match(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = block * (per_block + 1) + layer
        if kind == "resnets":
            return f"output_blocks.{index}.0.{_resnet(rest, RESNET)}"
        return f"output_blocks.{index}.1.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        block = int(m[1])
        slot = 2 if block in up_attention else 1
        return f"output_blocks.{block * (per_block + 1) + per_block}.{slot}.conv.{m[2]}"
    raise KeyError(key)


def vae_key(key: str, blocks: int) -> str:
    """One diffusers VAE key in LDM naming (without the ``first_stage_model.`` prefix)."""
    key = key.replace("conv_norm_out", "norm_out")
    shortcut = {"conv_shortcut": "nin_shortcut"}
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{_resnet(m[3], shortcut)}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.+)", key):
        return f"encoder.down.{m[1]}.downsample.{m[2]}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"decoder.up.{blocks - 1 - int(m[1])}.block.{m[2]}.{_resnet(m[3], shortcut)}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)", key):
        return f"decoder.up.{blocks - 1 - int(m[1])}.upsample.{m[2]}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_resnet(m[3], shortcut)}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
        return f"{m[1]}.mid.attn_1.{VAE_ATTENTION[m[2]]}.{m[3]}"
    return key


def write_single_file(diffusers: Path, target: Path, markers: tuple[str, ...] = ()) -> Path:
    """The pipeline in ``diffusers`` as one LDM-layout checkpoint at ``target``; ``markers``:
    empty tensors by those names (ComfyUI's ``v_pred``, ``ztsnr``)."""
    unet_config = json.loads((diffusers / "unet" / "config.json").read_text())
    vae_config = json.loads((diffusers / "vae" / "config.json").read_text())
    per_block = unet_config["layers_per_block"]
    # LDM keeps an up block's upsampler after its attention layer when it has one.
    up_attention = {
        i for i, kind in enumerate(unet_config["up_block_types"]) if "CrossAttn" in kind
    }
    out: dict[str, np.ndarray] = {}
    for key, value in load_file(diffusers / "unet" / "diffusion_pytorch_model.safetensors").items():
        out["model.diffusion_model." + unet_key(key, per_block, up_attention)] = value
    blocks = len(vae_config["block_out_channels"])
    for key, value in load_file(diffusers / "vae" / "diffusion_pytorch_model.safetensors").items():
        name = vae_key(key, blocks)
        if ".mid.attn_1." in name and value.ndim == 2:
            value = value[:, :, None, None]  # LDM's attention projections are 1x1 convolutions
        out["first_stage_model." + name] = value
    for key, value in load_file(diffusers / "text_encoder" / "model.safetensors").items():
        out["cond_stage_model.transformer." + key] = value
    for name in markers:
        out[name] = np.zeros((0,), dtype=np.float32)
    save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, str(target))
    return target
