"""Model families (SD 1.x, SD 2.x, SDXL, Turbo, LCM) and their default request settings."""

from __future__ import annotations

from dataclasses import dataclass

from impasto.engine.model_folder import ModelFolder

FAMILIES = ("sd1", "sd2", "sdxl", "sd-turbo", "sdxl-turbo", "lcm", "sdxl-lcm", "custom")


@dataclass(frozen=True)
class FamilyDefaults:
    """What a request gets when it does not say: steps, CFG scale, size and sampler."""

    steps: int
    cfg_scale: float
    width: int
    height: int
    sampler: str


_DEFAULTS = {
    "sd1": FamilyDefaults(20, 7.0, 512, 512, "euler_a"),
    "sd2": FamilyDefaults(20, 7.0, 768, 768, "euler_a"),
    "sdxl": FamilyDefaults(25, 7.0, 1024, 1024, "euler_a"),
    # Turbo models are distilled for 1-4 steps without guidance (cfg 1 skips the uncond pass).
    "sd-turbo": FamilyDefaults(1, 1.0, 512, 512, "euler_a"),
    "sdxl-turbo": FamilyDefaults(1, 1.0, 512, 512, "euler_a"),
    # LCM UNets embed the guidance scale; 8.5 is the published pipelines' default.
    "lcm": FamilyDefaults(4, 8.5, 512, 512, "lcm"),
    "sdxl-lcm": FamilyDefaults(4, 8.5, 1024, 1024, "lcm"),
    "custom": FamilyDefaults(20, 7.0, 512, 512, "euler_a"),
}


def family_defaults(family: str) -> FamilyDefaults:
    """The defaults of ``family`` (one of FAMILIES; an unknown name gets the custom ones)."""
    return _DEFAULTS.get(family, _DEFAULTS["custom"])


def detect_family(folder: ModelFolder) -> str:
    """The family of a model folder, from its components, UNet config and scheduler config."""
    unet = folder.unet_config
    sdxl = folder.text_encoder_2 is not None or unet.get("addition_embed_type") == "text_time"
    lcm = bool(unet.get("time_cond_proj_dim")) or folder.scheduler_class == "LCMScheduler"
    # Turbo (adversarial-distilled) checkpoints ship a trailing-timestep Euler scheduler.
    turbo = "turbo" in folder.name.lower() or (
        folder.scheduler.timestep_spacing == "trailing"
        and folder.scheduler_class.startswith("EulerAncestral" if sdxl else "Euler")
    )
    if lcm:
        return "sdxl-lcm" if sdxl else "lcm"
    if turbo:
        return "sdxl-turbo" if sdxl else "sd-turbo"
    if sdxl:
        return "sdxl"
    # Cross-attention width tells SD 1.x (CLIP ViT-L, 768) from SD 2.x (OpenCLIP ViT-H, 1024).
    width = unet.get("cross_attention_dim")
    return {768: "sd1", 1024: "sd2"}.get(width if isinstance(width, int) else 0, "custom")
