"""Tiny random-weight pipelines of the other families: SDXL, SD-Turbo, SDXL-Turbo and LCM.

Each is built seeded and offline like the SD folders in build_tiny.py, and exported with
optimum into the same layout. Turbo models differ from their base family only in their
scheduler config (trailing timesteps, few steps), which is what the engine reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LatentConsistencyModelPipeline,
    LCMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextModel, CLIPTextModelWithProjection

SEED = 0
SDXL_VAE_SCALING = 0.13025
TIME_EMBED_DIM = 8  # SDXL's addition_time_embed_dim, shrunk: six time ids of 8 each


@dataclass(frozen=True)
class FamilyVariant:
    """One tiny folder of another family: its name and how to build its pipeline."""

    name: str
    kind: str  # "sdxl", "sdxl-turbo", "sdxl-refiner", "sd-turbo" or "lcm"

    @property
    def task(self) -> str:
        """The optimum export task (optimum exports an SDXL refiner as image-to-image)."""
        return "image-to-image" if self.kind == "sdxl-refiner" else "text-to-image"


FAMILIES = {
    v.name: v
    for v in (
        FamilyVariant("sdxl-tiny", "sdxl"),
        FamilyVariant("sdxl-tiny-turbo", "sdxl-turbo"),
        FamilyVariant("sdxl-tiny-refiner", "sdxl-refiner"),
        FamilyVariant("sd-tiny-turbo", "sd-turbo"),
        FamilyVariant("sd-tiny-lcm", "lcm"),
    )
}

_SD_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
}


def _unet(cross_dim: int, **extra: Any) -> UNet2DConditionModel:
    """Two 32-channel blocks, one with cross-attention, like the SD tiny UNet."""
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_dim,
        attention_head_dim=8,
        # Groups of 4 channels: with one channel per group (32), GroupNorm would cancel the
        # per-channel time embedding, leaving the timestep, time ids and LCM's guidance
        # embedding without effect, and the equivalence tests unable to see them.
        norm_num_groups=8,
        **extra,
    )


def build_sdxl(kind: str, make_tokenizer: Any, make_vae: Any, text_config: Any, work: Path) -> Any:
    """SDXL: CLIP-L-like and OpenCLIP-G-like encoders (the second pooled), time-id conditioning."""
    tokenizer = make_tokenizer("<|endoftext|>", work / "bpe")
    tokenizer_2 = make_tokenizer("!", work / "bpe2")
    config = text_config("quick_gelu", tokenizer)
    config_2 = text_config("gelu", tokenizer_2)
    torch.manual_seed(SEED)
    text_encoder = CLIPTextModel(config)
    torch.manual_seed(SEED + 3)
    text_encoder_2 = CLIPTextModelWithProjection(config_2)
    torch.manual_seed(SEED + 1)
    unet = _unet(
        config.hidden_size + config_2.hidden_size,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=config_2.projection_dim + 6 * TIME_EMBED_DIM,
    )
    torch.manual_seed(SEED + 2)
    vae = make_vae()
    vae.register_to_config(scaling_factor=SDXL_VAE_SCALING)
    if kind == "sdxl-refiner":
        return _sdxl_refiner(tokenizer_2, text_encoder_2, vae, config_2.projection_dim)
    if kind == "sdxl-turbo":
        # SDXL-Turbo's published scheduler: Euler ancestral on trailing timesteps.
        scheduler: Any = EulerAncestralDiscreteScheduler(
            timestep_spacing="trailing", **_SD_SCHEDULE
        )
    else:
        scheduler = EulerDiscreteScheduler(timestep_spacing="leading", **_SD_SCHEDULE)
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )


def _sdxl_refiner(tokenizer_2: Any, text_encoder_2: Any, vae: Any, projection_dim: int) -> Any:
    """The refiner: the base's second encoder only, and time ids ending in an aesthetic score."""
    torch.manual_seed(SEED + 4)  # its own UNet, so a refined image differs from the base's
    unet = _unet(
        text_encoder_2.config.hidden_size,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_DIM,
        # Original size (2), crop (2) and aesthetic score (1): five time ids.
        projection_class_embeddings_input_dim=projection_dim + 5 * TIME_EMBED_DIM,
    )
    return StableDiffusionXLImg2ImgPipeline(
        vae=vae,
        text_encoder=None,
        text_encoder_2=text_encoder_2,
        tokenizer=None,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=EulerDiscreteScheduler(timestep_spacing="leading", **_SD_SCHEDULE),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
    )


def build_sd(kind: str, make_tokenizer: Any, make_vae: Any, text_config: Any, work: Path) -> Any:
    """SD-Turbo (SD 2.1-like, hidden states exported for clip skip) or an LCM-distilled UNet."""
    pad = "!" if kind == "sd-turbo" else "<|endoftext|>"
    tokenizer = make_tokenizer(pad, work / "bpe")
    config = text_config("gelu" if kind == "sd-turbo" else "quick_gelu", tokenizer)
    # Exported with every layer's hidden state, so clip skip can pick one.
    config.output_hidden_states = True
    torch.manual_seed(SEED)
    text_encoder = CLIPTextModel(config)
    torch.manual_seed(SEED + 1)
    if kind == "lcm":
        # LCM-distilled UNets embed the guidance scale (time_cond_proj_dim) instead of CFG.
        unet = _unet(config.hidden_size, time_cond_proj_dim=32)
    else:
        unet = _unet(config.hidden_size, use_linear_projection=True)
    torch.manual_seed(SEED + 2)
    vae = make_vae()
    common = {
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "unet": unet,
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }
    if kind == "lcm":
        scheduler = LCMScheduler(
            original_inference_steps=50, timestep_scaling=10.0, set_alpha_to_one=True,
            clip_sample=False, **_SD_SCHEDULE,
        )  # fmt: skip
        return LatentConsistencyModelPipeline(scheduler=scheduler, **common)
    scheduler = EulerDiscreteScheduler(timestep_spacing="trailing", **_SD_SCHEDULE)
    return StableDiffusionPipeline(scheduler=scheduler, **common)
