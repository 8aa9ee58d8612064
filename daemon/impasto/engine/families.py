"""The one table of model families: how each is recognised and what a request gets by default.

The engine (``ModelInfo.family``), the model detection of the services and the API's resolution
step all read ``FAMILIES``; docs/families.md prints the same table and a test keeps them equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from impasto.engine.model_folder import ModelFolder


@dataclass(frozen=True)
class FamilyDefaults:
    """What a request gets for each tunable it leaves out.

    ``cfg_scale`` 1 or less means no classifier-free guidance: one UNet batch per step.
    """

    steps: int
    cfg_scale: float
    width: int
    height: int
    sampler: str
    schedule: str = "default"


@dataclass(frozen=True)
class Family:
    """One family: its id, what it is, how it is recognised and its defaults."""

    id: str
    label: str
    detected_by: str
    defaults: FamilyDefaults
    cache_interval: int = 0
    """DeepCache's recommended interval (``cache_interval: -1``); 0: the family skips it."""


FAMILIES: dict[str, Family] = {
    f.id: f
    for f in (
        Family(
            "sd1",
            "Stable Diffusion 1.x",
            "cross-attention width 768 (or anything not listed below)",
            FamilyDefaults(20, 7.0, 512, 512, "euler_a"),
            cache_interval=3,
        ),
        Family(
            "sd2",
            "Stable Diffusion 2.x (epsilon)",
            "cross-attention width 1024",
            FamilyDefaults(20, 7.0, 512, 512, "euler_a"),
            cache_interval=3,
        ),
        Family(
            "sd1-v",
            "Stable Diffusion 1.x (v-prediction)",
            "`prediction_type: v_prediction` and cross-attention width 768",
            FamilyDefaults(20, 7.0, 512, 512, "euler_a"),
            cache_interval=3,
        ),
        Family(
            "sd2-v",
            "Stable Diffusion 2.x (v-prediction)",
            "`prediction_type: v_prediction` in the scheduler config (any other width)",
            FamilyDefaults(20, 7.0, 768, 768, "euler_a"),
            cache_interval=3,
        ),
        Family(
            "inpaint",
            "Inpainting UNet",
            "a UNet with 9 input channels",
            FamilyDefaults(20, 7.0, 512, 512, "euler_a"),
            cache_interval=3,
        ),
        Family(
            "sdxl",
            "Stable Diffusion XL",
            "`text_encoder_2/` or a `text_time` UNet",
            FamilyDefaults(25, 7.0, 1024, 1024, "euler_a"),
            cache_interval=3,
        ),
        Family(
            "sdxl-refiner",
            "SDXL refiner",
            "`requires_aesthetics_score` in `model_index.json`",
            FamilyDefaults(25, 7.0, 1024, 1024, "euler_a"),
            cache_interval=3,
        ),
        # Adversarially distilled: 1-4 steps and no guidance (diffusers' guidance_scale=0).
        Family(
            "sd-turbo",
            "SD-Turbo",
            '"turbo" in the name, or a trailing-timestep Euler scheduler',
            FamilyDefaults(1, 0.0, 512, 512, "euler_a"),
        ),
        Family(
            "sdxl-turbo",
            "SDXL-Turbo",
            "as SD-Turbo, with the SDXL signs",
            FamilyDefaults(1, 0.0, 512, 512, "euler_a"),
        ),
        # LCM UNets embed the guidance scale; 8.5 is the published pipelines' default.
        Family(
            "lcm",
            "Latent Consistency Model",
            "a UNet with `time_cond_proj_dim`, or an LCMScheduler",
            FamilyDefaults(4, 8.5, 512, 512, "lcm"),
        ),
        Family(
            "sdxl-lcm",
            "SDXL Latent Consistency Model",
            "as LCM, with the SDXL signs",
            FamilyDefaults(4, 8.5, 1024, 1024, "lcm"),
        ),
    )
}
DEFAULT_FAMILY = "sd1"
SD1_WIDTH, SD2_WIDTH = 768, 1024  # cross-attention widths: CLIP ViT-L/14 and OpenCLIP ViT-H/14


def recommended_cache_interval(family: str) -> int:
    """DeepCache's interval for ``family`` (0 for the few-step families, where it does not pay)."""
    return (FAMILIES.get(family) or FAMILIES[DEFAULT_FAMILY]).cache_interval


def family_defaults(family: str) -> FamilyDefaults:
    """The defaults of ``family`` (an unknown name gets SD 1.x's)."""
    return (FAMILIES.get(family) or FAMILIES[DEFAULT_FAMILY]).defaults


@dataclass(frozen=True)
class Signals:
    """What a model's files say, read by the engine from a folder or by the services' detector."""

    name: str
    sdxl: bool
    refiner: bool = False
    in_channels: int = 4
    lcm: bool = False
    turbo: bool = False
    prediction_type: str = "epsilon"
    cross_attention_dim: int | None = None


def classify(signals: Signals) -> str:
    """The family id of a model from its signals: the detection rules of ``FAMILIES``."""
    if signals.refiner:
        return "sdxl-refiner"
    if signals.in_channels == 9:
        return "inpaint"
    if signals.lcm:
        return "sdxl-lcm" if signals.sdxl else "lcm"
    if signals.turbo:
        return "sdxl-turbo" if signals.sdxl else "sd-turbo"
    if signals.sdxl:
        return "sdxl"
    if signals.prediction_type == "v_prediction":
        # SD 1.x v-prediction fine-tunes keep SD 1.x's text encoder (width 768) and 512 px.
        return "sd1-v" if signals.cross_attention_dim == SD1_WIDTH else "sd2-v"
    return "sd2" if signals.cross_attention_dim == SD2_WIDTH else "sd1"


def signals_from_configs(
    name: str,
    model_index: dict[str, Any],
    unet_config: dict[str, Any],
    scheduler_config: dict[str, Any],
    *,
    sdxl: bool,
    in_channels: int | None = None,
) -> Signals:
    """Signals from a pipeline's JSON configs (``sdxl`` and ``in_channels`` from its weights)."""
    scheduler_class = str(scheduler_config.get("_class_name", ""))
    names = [
        name,
        *(str(c.get("_name_or_path", "")) for c in (model_index, unet_config, scheduler_config)),
    ]
    # Turbo checkpoints ship a trailing-timestep Euler scheduler (ancestral for SDXL-Turbo).
    trailing = scheduler_config.get("timestep_spacing") == "trailing"
    euler = scheduler_class.startswith("EulerAncestral" if sdxl else "Euler")
    width = unet_config.get("cross_attention_dim")
    channels = in_channels if in_channels is not None else unet_config.get("in_channels", 4)
    return Signals(
        name=name,
        sdxl=sdxl,
        refiner=bool(model_index.get("requires_aesthetics_score")),
        in_channels=channels if isinstance(channels, int) else 4,
        lcm=bool(unet_config.get("time_cond_proj_dim")) or "LCM" in scheduler_class,
        turbo=any("turbo" in n.lower() for n in names) or (trailing and euler),
        prediction_type=str(scheduler_config.get("prediction_type", "epsilon")),
        cross_attention_dim=width if isinstance(width, int) else None,
    )


def detect_family(folder: ModelFolder) -> str:
    """The family of an opened model folder."""
    unet = folder.unet_config
    scheduler = {
        "_class_name": folder.scheduler_class,
        "timestep_spacing": folder.scheduler.timestep_spacing,
        "prediction_type": folder.scheduler.prediction_type,
    }
    sdxl = folder.text_encoder_2 is not None or unet.get("addition_embed_type") == "text_time"
    signals = signals_from_configs(folder.name, folder.model_index, unet, scheduler, sdxl=sdxl)
    return classify(signals)
