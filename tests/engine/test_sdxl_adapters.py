"""SDXL LoRAs (both text encoders), SDXL embeddings and bf16 LoRA files against diffusers/peft.

The LoRA files are made here from the seeded torch pipeline the committed ``sdxl-tiny`` came
from, with random (not zero) peft weights: in diffusers/peft layout (``text_encoder_2.``
keys, alpha in the metadata) and in kohya's (``lora_unet_``, ``lora_te1_``, ``lora_te2_``,
the UNet named as kohya's sd-scripts name SDXL's: ``input_blocks_4_1_...``). diffusers loads
the same file into the torch pipeline and fuses it; our final latents must agree to 1e-4.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import EulerDiscreteScheduler
from safetensors.torch import load_file, save_file

from impasto.engine import StableDiffusion, load_pipeline
from impasto.engine.providers import cpu_choice

from .conftest import TINY, small
from .families_oracle import (
    LORAS,
    MAX_PIXEL_DIFF,
    ROOT,
    latents_close,
    max_diff,
    noise,
    torch_pipeline,
)

sys.path.insert(0, str(ROOT / "models"))
from tiny_adapters import _lora, _metadata

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.2", "conv1"]
# kohya: MLP only, as diffusers 0.39 drops kohya text-encoder attention keys after converting
# them; peft: attention too, as diffusers cannot tell an MLP-only text-encoder file's format.
KOHYA_TEXT = ["fc1", "fc2"]
PEFT_TEXT = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
SDXL = {"cfg_scale": 5.0, "steps": 4, "sampler": "euler"}


@pytest.fixture(scope="module")
def sdxl() -> StableDiffusion:
    return load_pipeline(TINY / "sdxl-tiny", cpu_choice())


def _reference(
    latents: np.ndarray,
    lora: Path | None = None,
    weight: float = 1.0,
    embedding: Path | None = None,
) -> np.ndarray:
    """Final latents of the torch SDXL pipeline with ``lora`` fused / ``embedding`` loaded."""
    pipe = torch_pipeline("sdxl-tiny")
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    if lora is not None:
        pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="x")
        pipe.set_adapters(["x"], adapter_weights=[weight])
        pipe.fuse_lora(adapter_names=["x"])
    if embedding is not None:
        vectors = load_file(str(embedding))
        for key, encoder, tokenizer in (
            ("clip_l", pipe.text_encoder, pipe.tokenizer),
            ("clip_g", pipe.text_encoder_2, pipe.tokenizer_2),
        ):
            pipe.load_textual_inversion(
                vectors[key], token=embedding.stem, text_encoder=encoder, tokenizer=tokenizer
            )
    params = small(**SDXL)
    with torch.no_grad():
        out = pipe(
            prompt=params.prompt if embedding is None else f"a {embedding.stem} in a garden",
            negative_prompt=params.negative_prompt,
            num_inference_steps=params.steps,
            guidance_scale=params.cfg_scale,
            height=params.height,
            width=params.width,
            latents=torch.from_numpy(latents),
            output_type="latent",
        )
    return np.asarray(out.images)


def _sgm(module: str) -> str:
    """kohya's sd-scripts name of a diffusers SDXL UNet module (the tiny one: 1 layer/block)."""
    inner = {"conv1": "in_layers.2", "conv2": "out_layers.3", "time_emb_proj": "emb_layers.1"}

    def resnet(rest: str) -> str:
        head, _, tail = rest.partition(".")
        return ".".join([inner.get(head, head), *([tail] if tail else [])])

    if found := re.fullmatch(r"down_blocks\.(\d)\.(resnets|attentions)\.(\d)\.(.*)", module):
        block, part, index, rest = found.groups()
        layer = 1 + int(block) * 2 + int(index)
        return f"input_blocks.{layer}.{0 if part == 'resnets' else 1}." + (
            resnet(rest) if part == "resnets" else rest
        )
    if found := re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d)\.(.*)", module):
        part, index, rest = found.groups()
        layer = {"resnets0": 0, "attentions0": 1, "resnets1": 2}[part + index]
        return f"middle_block.{layer}." + (resnet(rest) if part == "resnets" else rest)
    if found := re.fullmatch(r"up_blocks\.(\d)\.(resnets|attentions)\.(\d)\.(.*)", module):
        block, part, index, rest = found.groups()
        layer = int(block) * 2 + int(index)
        return f"output_blocks.{layer}.{0 if part == 'resnets' else 1}." + (
            resnet(rest) if part == "resnets" else rest
        )
    raise AssertionError(f"no sgm name for {module}")


def _kohya_tensors(state: dict[str, Any], prefix: str, alpha: float, sgm: bool) -> dict[str, Any]:
    tensors: dict[str, Any] = {}
    for key, value in state.items():
        module, _, kind = key.rpartition(".lora_")
        name = prefix + (_sgm(module) if sgm else module).replace(".", "_")
        tensors[f"{name}.lora_{'down' if kind.startswith('A') else 'up'}.weight"] = value
        tensors[f"{name}.alpha"] = torch.tensor(alpha)
    return tensors


def write_sdxl_lora(path: Path, kohya: bool, dtype: torch.dtype = torch.float32) -> Path:
    """A random LoRA on the UNet and both text encoders of sdxl-tiny, saved in ``dtype``."""
    pipe = torch_pipeline("sdxl-tiny")
    unet = _lora(pipe.unet, UNET_TARGETS, 4, 8.0 if not kohya else 2.0, 200)
    text = KOHYA_TEXT if kohya else PEFT_TEXT
    te1 = _lora(pipe.text_encoder, text, 2, 4.0, 201)
    te2 = _lora(pipe.text_encoder_2, text, 2, 3.0, 202)
    metadata: dict[str, str] = {"format": "pt"}
    if kohya:
        tensors = _kohya_tensors(unet["state"], "lora_unet_", 2.0, sgm=True)
        tensors |= _kohya_tensors(te1["state"], "lora_te1_", 4.0, sgm=False)
        tensors |= _kohya_tensors(te2["state"], "lora_te2_", 3.0, sgm=False)
    else:
        parts = {"unet": unet, "text_encoder": te1, "text_encoder_2": te2}
        tensors = {f"{c}.{k}": v for c, lora in parts.items() for k, v in lora["state"].items()}
        configs: dict[str, Any] = {}
        for component, lora in parts.items():
            configs |= _metadata(lora["config"], component)
        metadata["lora_adapter_metadata"] = json.dumps(configs)
    save_file({k: v.to(dtype).contiguous() for k, v in tensors.items()}, str(path), metadata)
    return path


@pytest.mark.parametrize(("kohya", "dtype"), [(False, torch.float32), (True, torch.bfloat16)])
def test_sdxl_lora_matches_diffusers(
    sdxl: StableDiffusion, tmp_path: Path, kohya: bool, dtype: torch.dtype
) -> None:
    path = write_sdxl_lora(tmp_path / "xl.safetensors", kohya, dtype)
    latents = noise(11)
    reference = _reference(latents, path, 0.8)
    ours = sdxl.denoise(small(**SDXL, loras=[(path, 0.8)]), latents=latents)
    assert not ours.warnings
    assert latents_close(ours.latents, reference)
    plain = sdxl.denoise(small(**SDXL), latents=latents)
    assert not latents_close(plain.latents, reference), "the LoRA must change the latents"


def test_each_sdxl_text_encoder_lora_counts(sdxl: StableDiffusion, tmp_path: Path) -> None:
    # Dropping lora_te2_ (or lora_te1_) keys must change the result: both are applied.
    path = write_sdxl_lora(tmp_path / "xl.safetensors", kohya=True)
    tensors = load_file(str(path))
    latents = noise(12)
    full = sdxl.denoise(small(**SDXL, loras=[(path, 1.0)]), latents=latents).latents
    for prefix in ("lora_te1_", "lora_te2_"):
        part = tmp_path / f"without-{prefix}.safetensors"
        save_file({k: v for k, v in tensors.items() if not k.startswith(prefix)}, str(part))
        without = sdxl.denoise(small(**SDXL, loras=[(part, 1.0)]), latents=latents).latents
        assert np.abs(without - full).max() > 1e-3 * np.abs(full).max(), prefix


def test_sdxl_embedding_matches_diffusers(sdxl: StableDiffusion, tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(300)
    path = tmp_path / "tiny-xl.safetensors"
    save_file(
        {"clip_l": torch.randn(2, 32, generator=generator), "clip_g": torch.randn(2, 32)},
        str(path),
    )
    latents = noise(13)
    reference = _reference(latents, embedding=path)
    params = small(**SDXL, prompt="a tiny-xl in a garden")
    ours = sdxl.denoise(
        small(**SDXL, prompt=params.prompt, embeddings=[path]), latents=latents
    ).latents
    assert latents_close(ours, reference)
    plain = sdxl.denoise(params, latents=latents).latents
    assert not latents_close(plain, reference), "the embedding must change the latents"


def test_bf16_sd_lora_matches_diffusers(pipe: StableDiffusion, tmp_path: Path) -> None:
    from .test_lora import _reference as sd_reference

    bf16 = tmp_path / "tiny-peft-bf16.safetensors"
    source = LORAS / "tiny-peft.safetensors"
    from safetensors import safe_open

    with safe_open(str(source), "pt") as handle:
        metadata = handle.metadata()
    tensors = {k: v.to(torch.bfloat16) for k, v in load_file(str(source)).items()}
    save_file(tensors, str(bf16), metadata)
    latents = noise(14)
    reference = sd_reference([(bf16, 1.0)], latents)
    images = pipe.generate(small(steps=4, loras=[(bf16, 1.0)]), latents=latents)
    assert images[0].warnings == ()
    assert max_diff(reference, images[0].image) <= MAX_PIXEL_DIFF


# Real SDXL layout (2 layers per block; up blocks 0 and 1 attended): names kohya's sd-scripts
# write, and the diffusers modules they are.
SDXL_NAMES = {
    "input_blocks_0_0": "conv_in",
    "input_blocks_1_0_in_layers_2": "down_blocks_0_resnets_0_conv1",
    "input_blocks_3_0_op": "down_blocks_0_downsamplers_0_conv",
    "input_blocks_4_0_skip_connection": "down_blocks_1_resnets_0_conv_shortcut",
    "input_blocks_4_1_transformer_blocks_0_attn1_to_k": (
        "down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_k"
    ),
    "input_blocks_8_1_proj_out": "down_blocks_2_attentions_1_proj_out",
    "middle_block_1_transformer_blocks_3_attn2_to_v": (
        "mid_block_attentions_0_transformer_blocks_3_attn2_to_v"
    ),
    "middle_block_2_emb_layers_1": "mid_block_resnets_1_time_emb_proj",
    "output_blocks_0_1_transformer_blocks_9_ff_net_2": (
        "up_blocks_0_attentions_0_transformer_blocks_9_ff_net_2"
    ),
    "output_blocks_2_2_conv": "up_blocks_0_upsamplers_0_conv",
    "output_blocks_5_2_conv": "up_blocks_1_upsamplers_0_conv",
    "output_blocks_8_0_out_layers_3": "up_blocks_2_resnets_2_conv2",
    "time_embed_2": "time_embedding_linear_2",
    "label_emb_0_0": "add_embedding_linear_1",
    "out_2": "conv_out",
}


def test_sgm_names_map_to_diffusers_modules_on_the_sdxl_layout() -> None:
    from impasto.engine.lora_sgm import UNetLayout, sgm_to_diffusers

    layout = UNetLayout(layers_per_block=2, up_attention=frozenset({0, 1}))
    assert {k: sgm_to_diffusers(k, layout) for k in SDXL_NAMES} == SDXL_NAMES
    assert sgm_to_diffusers("down_blocks_1_attentions_0_proj_in", layout) is None
