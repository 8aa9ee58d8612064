"""The AUTOMATIC1111 API's lists and settings: models, samplers, options, png-info."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import msgspec
from litestar import Controller, get, post
from litestar.params import JSONBody
from PIL import Image, UnidentifiedImageError

from impasto.api.compat.a1111_defaults import A1111_DEFAULT_OPTIONS
from impasto.api.compat.a1111_infotext import png_info_parameters
from impasto.api.compat.a1111_model_settings import usable_checkpoint
from impasto.api.compat.a1111_option_checks import check_options
from impasto.api.compat.a1111_schemas import (
    LoraItem,
    PngInfoRequest,
    PngInfoResponse,
    SamplerItem,
    SchedulerItem,
    SDModelItem,
    Txt2ImgRequest,
)
from impasto.api.compat.common import decode_base64
from impasto.api.compat.errors import CompatError
from impasto.api.compat.samplers_map import sampler_list, scheduler_list
from impasto.api.dependencies import AllServices, Catalog
from impasto.formats.png import PARAMETERS_KEY, exif_user_comment, parse_a1111_parameters
from impasto.formats.png_text import PngTextError, is_png, png_text
from impasto.services import compat, compat_assets
from impasto.services.container import Services

MAX_OPTIONS = 512  # option names kept (A1111 itself has about 400)
MAX_OPTION_BYTES = 16 * 1024  # one option's value, as JSON


def _check_options_size(new: dict[str, Any], stored: dict[str, Any], prefix: str = "") -> None:
    """Options are only echoed back, so they are kept small: refuse what no client needs.
    ``prefix`` is where the client sent them (``override_settings.``)."""
    for key, value in new.items():
        if len(key) > 200:
            message = "option names are at most 200 characters"
            raise CompatError(422, message, prefix + key[:40])
        if len(msgspec.json.encode(value)) > MAX_OPTION_BYTES:
            message = f"must be at most {MAX_OPTION_BYTES} bytes of JSON"
            raise CompatError(422, message, prefix + key)
    if len(stored.keys() | new.keys()) > MAX_OPTIONS:
        message = f"at most {MAX_OPTIONS} options are kept"
        raise CompatError(422, message, prefix + next(iter(new)))


async def store_options(services: Services, data: dict[str, Any]) -> None:
    """Keep ``data`` as A1111's options (POST /options, or a request's override_settings with
    override_settings_restore_afterwards false); sd_model_checkpoint switches the model."""
    compat_state = compat.compat_state(services)
    # Checked before anything is kept (the model switch included); sd_vae lists the models
    # folder: in a thread.
    others = {k: v for k, v in data.items() if k != "sd_model_checkpoint"}
    _check_options_size(others, compat_state.options)
    await asyncio.to_thread(check_options, services, data)
    if "sd_model_checkpoint" in data:
        wanted = str(data["sd_model_checkpoint"])
        # A title or file name is matched against the models folder's listing: in a thread.
        model = await asyncio.to_thread(compat.resolve_checkpoint, services, wanted)
        if model is not None:
            field = "sd_model_checkpoint"
            await asyncio.to_thread(usable_checkpoint, services, model, field)
        else:
            listed = await asyncio.to_thread(services.catalog.list)
            names = ", ".join(m.id for m in listed)
            raise CompatError(
                422,
                f"checkpoint {wanted!r} is not installed; installed: {names}",
                "sd_model_checkpoint",
            )
        compat_state.checkpoint = model
    # Other options are kept so clients read back what they set; Impasto honours the ones
    # docs/compat.md lists (clip skip, sd_vae, sd_vae_decode_method...).
    compat_state.options.update(others)


def check_kept_overrides(services: Services, req: Txt2ImgRequest) -> None:
    """Refuse, before anything of the request is stored, override_settings that
    ``keep_overrides`` would refuse to keep (too large), naming them where they were sent."""
    if req.override_settings and req.override_settings_restore_afterwards is False:
        others = {k: v for k, v in req.override_settings.items() if k != "sd_model_checkpoint"}
        stored = compat.compat_state(services).options
        _check_options_size(others, stored, "override_settings.")


async def keep_overrides(services: Services, req: Txt2ImgRequest) -> None:
    """A1111 keeps a request's override_settings as its options when
    override_settings_restore_afterwards is false (once the request is accepted)."""
    if req.override_settings and req.override_settings_restore_afterwards is False:
        await store_options(services, req.override_settings)


def _impasto_options(services: Services) -> dict[str, Any]:
    """A1111 options whose value is what Impasto does, whatever a client stored."""
    return {
        "sd_model_checkpoint": compat.current_checkpoint(services),
        "show_progress_every_n_steps": services.settings.preview_every or -1,
        "live_previews_enable": services.settings.preview_every > 0,
    }


def _png_text(data: bytes) -> dict[str, str]:
    """The text of an image without decoding its pixels (no decompression bombs)."""
    if is_png(data):
        try:
            return png_text(data)
        except PngTextError as exc:
            raise CompatError(422, f"is not a readable PNG: {exc}", "image") from None
    try:
        # Other formats: opening reads the header only; .info holds their text fields.
        with Image.open(io.BytesIO(data)) as image:
            text = {str(k): v for k, v in image.info.items() if isinstance(v, str)}
            comment = exif_user_comment(image)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise CompatError(422, "is not a readable image", "image") from None
    if comment and PARAMETERS_KEY not in text:
        text[PARAMETERS_KEY] = comment  # where A1111 saves a JPEG's or WebP's parameters
    return text


def _png_info(image: str) -> PngInfoResponse:
    if not image.strip():  # as A1111 answers an empty image
        return PngInfoResponse(info="", items={}, parameters={})
    try:
        image_bytes = decode_base64(image)
    except ValueError:
        raise CompatError(422, "must be a base64 image or a data: URL", "image") from None
    chunks = _png_text(image_bytes)
    text = chunks.pop(PARAMETERS_KEY, "")
    parameters = png_info_parameters(parse_a1111_parameters(text)) if text else {}
    return PngInfoResponse(info=text, items=chunks, parameters=parameters)


class A1111InfoController(Controller):
    path = "/"
    tags = ("automatic1111",)

    @get("/sd-models", summary="Installed checkpoints, as A1111 lists them")
    async def sd_models(self, catalog: Catalog) -> list[SDModelItem]:
        models = await asyncio.to_thread(catalog.list)
        return [
            SDModelItem(
                title=model.id,
                model_name=model.id,
                # A1111's short hash is the sha256's first 10 hex digits. An installed single
                # file's hash is its sha256; a folder's is one over its files (docs/models.md).
                hash=model.hash[:10] if model.hash else None,
                sha256=model.hash or None,
                # The folder's name, relative to the models folder: no local path leaves.
                filename=model.path.name,
                config=None,
            )
            for model in models
        ]

    @get("/samplers", summary="Samplers by their A1111 names")
    async def samplers(self) -> list[SamplerItem]:
        return sampler_list()

    @get("/schedulers", summary="Sigma schedules by their A1111 names")
    async def schedulers(self) -> list[SchedulerItem]:
        return scheduler_list()

    @get("/loras", summary="Installed LoRAs (the models folder's loras/), as A1111's Lora lists")
    async def loras(self, services: AllServices) -> list[LoraItem]:
        loras = await asyncio.to_thread(compat_assets.installed_loras, services)
        return [LoraItem(**lora) for lora in loras]

    @post("/refresh-checkpoints", status_code=200, summary="Rescan models (always current)")
    async def refresh_checkpoints(self, services: AllServices) -> None:
        # The catalog reads the models folder on every call: listing it is the rescan.
        await asyncio.to_thread(services.catalog.list)

    @get("/options", summary="A1111 options; sd_model_checkpoint is the model used by default")
    async def get_options(self, services: AllServices) -> dict[str, Any]:
        stored = compat.compat_state(services).options
        return {**A1111_DEFAULT_OPTIONS, **stored, **_impasto_options(services)}

    @post("/options", status_code=200, summary="Set options; sd_model_checkpoint switches models")
    async def set_options(self, services: AllServices, data: JSONBody[dict[str, Any]]) -> None:
        await store_options(services, data)

    @post("/png-info", status_code=200, summary="The generation parameters embedded in a PNG")
    async def png_info(self, data: JSONBody[PngInfoRequest]) -> PngInfoResponse:
        # Decoding up to max_body_size of base64 is CPU work: not on the event loop.
        return await asyncio.to_thread(_png_info, data.image)
