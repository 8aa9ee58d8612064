"""Tiny adapters for the sd-tiny model: LoRAs made with peft, textual inversions, another VAE.

Laid out like a models folder (``loras/``, ``embeddings/``, ``vae/``), so tests and the daemon
can point at it:

- ``loras/tiny-peft.safetensors``: diffusers/peft keys (``unet.*.lora_A.weight``), rank 4,
  alpha 8 in the file's ``lora_adapter_metadata``; UNet attention, feed-forward, 1x1 and 3x3
  convs, time-embedding projections, and the text encoder's attention and MLP.
- ``loras/tiny-kohya.safetensors``: another LoRA in kohya's format (``lora_unet_*``,
  ``lora_te_*``, ``lora_down``/``lora_up`` and an ``alpha`` per module).
- ``embeddings/tiny-diffusers.safetensors`` (one key, the token ``<tiny-cat>``, two vectors)
  and ``embeddings/tiny-a1111.safetensors`` (``emb_params``, named by its file stem).
- ``vae/sd-tiny-vae-alt/``: a VAE of the same shape with other weights, ONNX exported.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

ADAPTERS_ROOT = "adapters"
SEED = 100
UNET_TARGETS = [
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
    "conv1", "time_emb_proj",
]  # fmt: skip
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def _lora(model: Any, targets: list[str], rank: int, alpha: float, seed: int) -> dict[str, Any]:
    """Random (not zero-initialised) LoRA weights for ``targets`` of ``model``."""
    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, init_lora_weights=False)
    model.add_adapter(config, adapter_name="tiny")
    state = get_peft_model_state_dict(model, adapter_name="tiny")
    # Keep the update modest, so the images stay comparable to the base model's.
    state = {k: v * 0.3 for k, v in state.items()}
    return {"state": state, "config": config.to_dict()}


def _metadata(config: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The LoraConfig as diffusers' save_lora_weights stores it: json-safe, keys prefixed."""
    safe = {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}
    safe = json.loads(json.dumps(safe, default=str))
    return {f"{prefix}.{k}": v for k, v in safe.items()}


def write_peft_lora(pipeline: Any, path: Path) -> None:
    """A diffusers/peft-format LoRA on the UNet and the text encoder."""
    unet = _lora(pipeline.unet, UNET_TARGETS, 4, 8.0, SEED)
    text = _lora(pipeline.text_encoder, TEXT_TARGETS, 4, 8.0, SEED + 1)
    tensors = {f"unet.{k}": v for k, v in unet["state"].items()}
    tensors |= {f"text_encoder.{k}": v for k, v in text["state"].items()}
    header = {
        "format": "pt",
        "lora_adapter_metadata": json.dumps(
            _metadata(unet["config"], "unet") | _metadata(text["config"], "text_encoder")
        ),
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=header)


def write_kohya_lora(pipeline: Any, path: Path) -> None:
    """A kohya-format LoRA: underscored module paths, lora_down/lora_up and an alpha each."""
    unet = _lora(pipeline.unet, ["to_k", "to_v", "ff.net.2", "proj_out"], 2, 1.0, SEED + 2)
    # MLP only: diffusers 0.39 converts kohya text-encoder attention keys to names it then
    # drops, so those could not be checked against it.
    text = _lora(pipeline.text_encoder, ["fc1", "fc2"], 2, 1.0, SEED + 3)
    tensors: dict[str, Any] = {}
    for prefix, lora in (("lora_unet_", unet), ("lora_te_", text)):
        for key, value in lora["state"].items():
            module, _, kind = key.rpartition(".lora_")
            name = prefix + module.replace(".", "_")
            tensors[
                f"{name}.lora_down.weight" if kind.startswith("A") else f"{name}.lora_up.weight"
            ] = value
            tensors[f"{name}.alpha"] = torch.tensor(float(lora["config"]["lora_alpha"]))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def write_embeddings(pipeline: Any, folder: Path) -> None:
    """One diffusers-format and one A1111-format textual inversion, random vectors."""
    width = pipeline.text_encoder.config.hidden_size
    generator = torch.Generator().manual_seed(SEED + 4)
    vectors = torch.randn((3, width), generator=generator)
    save_file({"<tiny-cat>": vectors[:2].contiguous()}, str(folder / "tiny-diffusers.safetensors"))
    save_file({"emb_params": vectors[2:].contiguous()}, str(folder / "tiny-a1111.safetensors"))


def write_alt_vae(build_pipeline: Any, variant: Any, folder: Path) -> None:
    """Export sd-tiny again with a differently seeded VAE and keep only its VAE folders."""
    from build_tiny import export_onnx, make_vae, scrub_source_paths

    with tempfile.TemporaryDirectory(prefix="impasto-vae-") as tmp:
        work = Path(tmp)
        pipeline = build_pipeline(variant, work, full=False)
        torch.manual_seed(SEED + 5)
        pipeline.vae = make_vae(False)
        pipeline.register_modules(vae=pipeline.vae)
        pipeline.save_pretrained(work / "diffusers")
        export_onnx(work / "diffusers", work / "onnx", variant.task, validate=True)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for part in ("vae_decoder", "vae_encoder"):
            shutil.copytree(work / "onnx" / part, folder / part)
    scrub_source_paths(folder, folder.name)


def build_adapters(root: Path, build_pipeline: Any, variant: Any) -> None:
    """Write every adapter under ``root`` (loras/, embeddings/, vae/)."""
    for sub in ("loras", "embeddings", "vae"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="impasto-adapters-") as tmp:
        write_peft_lora(
            build_pipeline(variant, Path(tmp), full=False), root / "loras" / "tiny-peft.safetensors"
        )
        write_kohya_lora(
            build_pipeline(variant, Path(tmp), full=False),
            root / "loras" / "tiny-kohya.safetensors",
        )
        write_embeddings(build_pipeline(variant, Path(tmp), full=False), root / "embeddings")
    write_alt_vae(build_pipeline, variant, root / "vae" / "sd-tiny-vae-alt")
