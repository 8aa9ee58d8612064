"""Wire schemas of the AUTOMATIC1111 API, as its clients send and read them.

Fields are optional with A1111's defaults, and unknown fields are ignored, because clients send
whatever their A1111 version knows (hires fix, scripts, extensions); docs/compat.md says which
fields Impasto honours.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

from impasto.wire import CfgScale, Fraction, HiresScale, NoiseMultiplier, Schema


class Txt2ImgRequest(Schema):
    """StableDiffusionProcessingTxt2Img, the fields Impasto reads or checks."""

    prompt: str | None = ""
    negative_prompt: str | None = ""
    styles: list[str] | None = None
    seed: int | None = -1
    subseed: int | None = -1
    subseed_strength: Fraction | None = 0.0
    # "Resize seed from" (A1111's Seed extras): both above 0, else off.
    seed_resize_from_h: int | None = -1
    seed_resize_from_w: int | None = -1
    # The ancestral, SDE and DDIM samplers' fresh noise per step (None: eta_ancestral/eta_ddim).
    eta: Fraction | None = None
    # Sigma churn (Euler, Heun, DPM2); A1111 1.6+ reads its options instead (a1111_settings).
    s_churn: float | None = None
    s_tmin: float | None = None
    s_tmax: float | None = None
    s_noise: float | None = None
    # "Negative Guidance minimum sigma"; else the s_min_uncond option (a1111_settings).
    s_min_uncond: float | None = None
    sampler_name: str | None = None
    sampler_index: str | None = None
    scheduler: str | None = None
    batch_size: int | None = 1
    n_iter: int | None = 1
    # Left out, they take the model's defaults (its family's, docs/families.md).
    steps: int | None = None
    cfg_scale: CfgScale | None = None
    width: int | None = None
    height: int | None = None
    restore_faces: bool | None = None
    tiling: bool | None = None
    denoising_strength: Fraction | None = None
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool | None = True
    enable_hr: bool | None = False
    hr_scale: HiresScale | None = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int | None = 0
    hr_resize_x: int | None = 0
    hr_resize_y: int | None = 0
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str | None = ""
    hr_negative_prompt: str | None = ""
    hr_cfg: CfgScale | None = None
    hr_checkpoint_name: str | None = None
    # A1111 1.6+: an SDXL refiner takes over at this fraction of the steps.
    refiner_checkpoint: str | None = None
    refiner_switch_at: Fraction | None = None
    script_name: str | None = None
    script_args: list[Any] | None = None
    send_images: bool | None = True
    save_images: bool | None = False
    alwayson_scripts: dict[str, Any] | None = None
    # A1111 1.7+: a picture's parameters text; it fills the fields the request leaves unset.
    infotext: str | None = None


MaskBlur = Annotated[int, Meta(ge=0, le=64)]
"""A1111's mask blur in pixels (its slider's range)."""


class Img2ImgRequest(Txt2ImgRequest):
    """StableDiffusionProcessingImg2Img: txt2img plus init images and the inpainting mask."""

    init_images: list[str] | None = None
    resize_mode: int | None = 0
    mask: str | None = None
    mask_blur: MaskBlur | None = None
    mask_blur_x: MaskBlur | None = 4
    mask_blur_y: MaskBlur | None = 4
    mask_round: bool | None = True
    inpainting_fill: int | None = 0
    inpaint_full_res: bool | int | None = True
    inpaint_full_res_padding: int | None = 0
    inpainting_mask_invert: int | None = 0
    initial_noise_multiplier: NoiseMultiplier | None = None
    image_cfg_scale: Annotated[float, Meta(ge=0, le=30)] | None = None
    include_init_images: bool | None = False


class GenerationResponse(Schema):
    """What txt2img and img2img return: base64 PNGs, the request echoed, the info JSON text."""

    images: list[str]
    parameters: dict[str, Any]
    info: str


class ProgressResponse(Schema):
    """GET /sdapi/v1/progress."""

    progress: float
    eta_relative: float
    state: dict[str, Any]
    current_image: str | None = None
    textinfo: str | None = None
    current_task: str | None = None


class PngInfoRequest(Schema):
    """POST /sdapi/v1/png-info: a base64 image or data URL."""

    image: str


class PngInfoResponse(Schema):
    """The ``parameters`` text, the other text chunks, and the parsed generation parameters."""

    info: str
    items: dict[str, Any]
    parameters: dict[str, Any]


# The listings' items, named and typed as A1111's modules/api/models.py has them (nullable
# where its pydantic field is Optional). Impasto always sends every field, so each is required.


class SamplerItem(Schema):
    """GET /sdapi/v1/samplers."""

    name: str
    aliases: list[str]
    options: dict[str, Any]


class SchedulerItem(Schema):
    """GET /sdapi/v1/schedulers."""

    name: str
    label: str
    aliases: list[str] | None
    default_rho: float | None
    need_inner_model: bool | None


class SDModelItem(Schema):
    """GET /sdapi/v1/sd-models; ``filename`` is relative to the models folder."""

    title: str
    model_name: str
    hash: str | None
    sha256: str | None
    filename: str
    config: str | None


class SDVaeItem(Schema):
    """GET /sdapi/v1/sd-vae; ``filename`` is relative to the models folder."""

    model_name: str
    filename: str


class LoraItem(Schema):
    """GET /sdapi/v1/loras, as A1111's built-in Lora extension lists them."""

    name: str
    alias: str
    path: str
    metadata: dict[str, Any]


class HypernetworkItem(Schema):
    """GET /sdapi/v1/hypernetworks."""

    name: str
    path: str | None


class FaceRestorerItem(Schema):
    """GET /sdapi/v1/face-restorers."""

    name: str
    cmd_dir: str | None


class RealesrganItem(Schema):
    """GET /sdapi/v1/realesrgan-models."""

    name: str
    path: str | None
    scale: int | None


class PromptStyleItem(Schema):
    """GET /sdapi/v1/prompt-styles."""

    name: str
    prompt: str | None
    negative_prompt: str | None


class LatentUpscalerModeItem(Schema):
    """GET /sdapi/v1/latent-upscale-modes."""

    name: str


class ExtensionItem(Schema):
    """GET /sdapi/v1/extensions."""

    name: str
    remote: str
    branch: str
    commit_hash: str
    version: str
    commit_date: str
    enabled: bool


class EmbeddingItem(Schema):
    """One textual inversion embedding: ``shape`` is the vector width, ``vectors`` their count."""

    step: int | None
    sd_checkpoint: str | None
    sd_checkpoint_name: str | None
    shape: int
    vectors: int


class EmbeddingsResponse(Schema):
    """GET /sdapi/v1/embeddings: by name, the readable ones and those that could not be read."""

    loaded: dict[str, EmbeddingItem]
    skipped: dict[str, EmbeddingItem]


class MemoryResponse(Schema):
    """GET /sdapi/v1/memory: A1111's RAM and CUDA reports, objects of byte counts."""

    ram: dict[str, Any]
    cuda: dict[str, Any]


class ScriptsList(Schema):
    """GET /sdapi/v1/scripts: the selectable scripts' lower-case titles per tab."""

    txt2img: list[str]
    img2img: list[str]


class ScriptArg(Schema):
    """One argument of a script, in ``script_args`` order: its UI default, range and choices."""

    label: str | None
    value: Any
    minimum: float | None
    maximum: float | None
    step: float | None
    choices: list[str] | None


class ScriptInfo(Schema):
    """GET /sdapi/v1/script-info: a script and its arguments."""

    name: str | None
    is_alwayson: bool | None
    is_img2img: bool | None
    args: list[ScriptArg]
