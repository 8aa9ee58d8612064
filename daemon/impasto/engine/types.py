"""Request and result types of the engine: plain dataclasses, no HTTP or SQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from PIL import Image

from impasto.wire import ScheduleName as Schedule


class EngineError(Exception):
    """Base class of the errors the engine raises on purpose."""


class InvalidRequestError(EngineError, ValueError):
    """A request field is out of range; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ModelFolderError(EngineError):
    """A model folder is missing a file or holds a bad one; ``path`` names it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class GenerationCancelled(EngineError):
    """Raised out of a generation when its cancel token was set."""


class CancelToken:
    """Set from any thread; the engine checks it before every UNet call."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise GenerationCancelled("generation cancelled")


class AppliedLora(NamedTuple):
    """A LoRA file at its weight; ``unet_weight``, where given, is the UNet's (A1111's
    ``<lora:name:te:unet>``) and ``weight`` the text encoders'."""

    path: Path
    weight: float
    unet_weight: float | None = None

    def weight_of(self, component: str) -> float:
        """The weight on ``component`` (``unet``, ``text_encoder``, ``text_encoder_2``)."""
        if component == "unet" and self.unet_weight is not None:
            return self.unet_weight
        return self.weight


@dataclass(frozen=True)
class Progress:
    """One sampler step done; ``preview`` is set every ``preview_every`` steps."""

    step: int
    total: int
    preview: Image.Image | None = None


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class HiresParams:
    """AUTOMATIC1111's hires fix: upscale the first pass, then denoise it again at this size.

    ``None`` fields and ``steps`` 0 take the first pass's value.
    """

    width: int
    height: int
    upscaler: str = "latent"
    """A latent mode of ``upscale_latents.LATENT_MODES``, an image one (lanczos, nearest), or
    the name of the super-resolution model in ``upscaler_model``."""
    steps: int = 0
    strength: float = 0.7
    sampler: str | None = None
    schedule: Schedule | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    cfg_scale: float | None = None
    upscaler_model: Path | None = None
    """The ONNX super-resolution model file that upscales the decoded first pass."""


@dataclass(frozen=True)
class SdUpscaleParams:
    """AUTOMATIC1111's SD upscale: ``init_image`` upscaled by ``scale``, then img2img over
    overlapping tiles of ``width`` x ``height``, blended."""

    scale: float = 2.0
    overlap: int = 64
    upscaler: str = "lanczos"
    """none, lanczos, nearest, or the name of the model in ``upscaler_model``."""
    upscaler_model: Path | None = None


@dataclass
class GenerationParams:
    """Everything one generation needs. ``seed`` None or -1 draws a random seed."""

    prompt: str
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    steps: int = 20
    cfg_scale: float = 7.0
    """Classifier-free guidance; 1 or less runs the UNet once per step, without guidance."""
    seed: int | None = None
    subseed: int | None = None
    """AUTOMATIC1111's variation seed (None or -1: random), used when ``subseed_strength`` > 0."""
    subseed_strength: float = 0.0
    """How far the starting noise moves toward the variation seed's (0..1)."""
    rng: str = "pcg64"
    """The noise source: ``pcg64`` (numpy's), or ``cpu``: torch's CPU generator, whose noise for
    a seed is AUTOMATIC1111's with "RNG: CPU" and ComfyUI's."""
    seed_resize_from: tuple[int, int] | None = None
    """AUTOMATIC1111's "Resize seed from" (width, height in pixels): the starting noise is the
    seed's at that size, laid over the centre, so the layout it gives there carries over."""
    noise_seed_delta: int = 0
    """AUTOMATIC1111's "Eta noise seed delta" (ENSD): the samplers' noise after the starting
    noise comes from seed + delta (image i: seed + i + delta); 0 leaves it the seed's own."""
    eta: float | None = None
    """How much fresh noise each step of the ancestral, SDE and DDIM samplers adds (A1111's
    eta); None: each sampler's own (1; DDIM 0). A sampler without per-step noise ignores it."""
    s_churn: float = 0.0
    """Sigma churn (Euler, Heun, DPM2): noise added back before each step, spread over the
    steps (k-diffusion's ``s_churn``; 0 off); ``s_tmin``..``s_tmax`` (None: no upper bound) are
    the sigmas it acts at and ``s_noise`` scales its noise (``schedulers/churn.py``)."""
    s_tmin: float = 0.0
    s_tmax: float | None = None
    s_noise: float = 1.0
    sigma_min: float | None = None
    """Where the schedules that span a range end, and ``sigma_max`` where they start, instead
    of their own; ``rho`` the Karras and polyexponential curvature (None: theirs). A schedule
    that has no range or rho ignores them (``schedulers.bounds_for``)."""
    sigma_max: float | None = None
    rho: float | None = None
    s_min_uncond: float = 0.0
    """Below this sigma every other UNet call (every call with ``s_min_uncond_all``) leaves out
    the negative prompt's pass, and ``skip_early_cond`` leaves it out of that first fraction
    of the calls: A1111's "Negative Guidance minimum sigma" and "Ignore negative prompt during
    early sampling" (``pipelines.base.UncondSkip``); 0 off."""
    s_min_uncond_all: bool = False
    skip_early_cond: float = 0.0
    discard_penultimate_sigma: bool = False
    """A1111's "Always discard next-to-last sigma": the samplers that take it lay out one step
    more and drop the last sigma before the end (DPM2 and DPM2 a always do)."""
    sgm_noise_multiplier: bool = False
    """A1111's "SGM noise multiplier": a txt2img run with a sampler that walks sigmas starts
    from sqrt(sigma^2 + 1) times the noise instead of sigma times it
    (``SchedulerConfig.sgm_noise_multiplier``)."""
    unipc_order: int | None = None
    """UniPC's order (1 to 3) and ``unipc_variant`` (bh1, bh2) where the run's sampler is UniPC
    (None: 2 and bh2): A1111's "UniPC order" and "UniPC variant"."""
    unipc_variant: str | None = None
    batch_size: int = 1
    sampler: str = "euler_a"
    schedule: Schedule = "default"
    init_image: Image.Image | None = None
    mask_image: Image.Image | None = None
    strength: float = 0.75
    noise_multiplier: float = 1.0
    """img2img and inpainting: the start's noise times this (AUTOMATIC1111's "Noise multiplier
    for img2img"); below 1 the picture keeps more of the init image at the same strength."""
    latent_resize: bool = False
    """img2img: ``init_image`` keeps its own size (sides multiples of 8) and its latents are
    resized to width x height (A1111's "Just resize (latent upscale)"); no mask, and no
    9-channel inpainting UNet, which sees the picture at the run's size (``latent_resize``)."""
    color_correction: bool = False
    """img2img and inpainting: each image's colours matched to ``color_reference``'s, else
    ``init_image``'s, before any paste-back (A1111's "Apply color correction to img2img
    results"; ``color_correction``)."""
    color_reference: Image.Image | None = None
    img2img_steps: str = "strength"
    """How a run from an image (img2img, inpainting, the hires pass) counts its steps:
    ``strength`` (diffusers), ``a1111`` (A1111's img2img) or ``exact`` (``steps`` of them;
    A1111's hires pass, ComfyUI's denoise): ``pipelines.image_steps``."""
    inpaint_mask_weight: float = 1.0
    """A 9-channel inpainting UNet's view of the picture it repaints (A1111's "Inpainting
    conditioning mask strength"): the picture times 1 - weight x mask, so 1 hides what is
    masked (the whole picture without a mask), 0 shows it all; ``pipelines.inpaint``."""
    extra_noise: float = 0.0
    """A1111's "Extra noise" (img2img, inpainting and the hires pass): the start's noise added
    once more, times this, at the latents' scale; 0 off."""
    preview_every: int = 0
    loras: list[AppliedLora] = field(default_factory=list)
    """LoRA files with their weights (-2..2), applied at run time (a ``(path, weight)`` pair
    is read as one)."""
    embeddings: list[Path] = field(default_factory=list)
    """Textual inversion files whose tokens the prompts may use."""
    vae_dir: Path | None = None
    """A VAE folder (``vae_decoder/``, optional ``vae_encoder/``) replacing the model's."""
    clip_skip: int = 1
    """1 uses the last text encoder layer; n uses the n-th last (AUTOMATIC1111's setting)."""
    refiner: Path | None = None
    """An SDXL refiner folder that runs the steps after ``refiner_switch``."""
    refiner_switch: float = 0.8
    """The fraction of the schedule (0..1) the base model runs before the refiner takes over."""
    hires: HiresParams | None = None
    """A second, larger pass after this one (txt2img only)."""
    sd_upscale: SdUpscaleParams | None = None
    """Upscale ``init_image`` and img2img it tile by tile (one output image)."""
    cache_interval: int = 0
    """DeepCache: the whole UNet every n-th evaluation, its shallow part between; 0 or 1 off."""
    decoder: str = "full"
    """``full``: the model's VAE; ``fast``: its TAESD decoder (a quick approximation)."""
    inpaint_area: str = "whole"
    """``whole``: inpaint at the whole picture's size; ``masked``: only the part around the mask,
    scaled to width x height and pasted back (the output keeps the init image's size)."""
    inpaint_padding: int = 32
    """Pixels of context around the mask's bounding box for ``inpaint_area="masked"``."""
    masked_content: str = "original"
    """What the masked part starts from below strength 1: ``original``, ``fill``,
    ``latent_noise`` or ``latent_nothing`` (AUTOMATIC1111's "masked content")."""
    fast_decoder: Path | None = None
    """An installed TAESD folder (``taesd_decoder/``) for previews and ``decoder="fast"``,
    used when the model folder has no ``taesd_decoder/`` of its own."""
    tiling: bool | str = False
    """Seamless tiling: every convolution wraps around, so the picture tiles without a seam;
    "x" or "y" wraps that axis alone (True: both)."""
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class GeneratedImage:
    """One output image with the seed that made it."""

    image: Image.Image
    seed: int
    warnings: tuple[str, ...] = ()
