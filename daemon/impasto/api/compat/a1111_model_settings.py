"""Which checkpoint, refiner and VAE an AUTOMATIC1111 request runs on: its fields and its
``override_settings``, else the options a client set with ``POST /options``."""

from __future__ import annotations

from impasto.api.compat.a1111_schemas import Txt2ImgRequest
from impasto.api.compat.errors import CompatError
from impasto.services import compat_assets
from impasto.services.compat import compat_state, current_checkpoint, resolve_checkpoint
from impasto.services.container import Services
from impasto.services.model_entry import REFINER_FAMILY

NO_VAE = ("", "automatic", "none")  # A1111's sd_vae values that mean the checkpoint's own VAE


def checked_vae(services: Services, value: object, field: str) -> str | None:
    """A1111's ``sd_vae`` value as the native ``vae``: None for the checkpoint's own VAE, else
    an installed VAE's name (a file extension dropped); a CompatError names ``field`` when no
    such VAE is installed. Lists the models folder: call it off the event loop."""
    name = str(value or "").strip()
    if name.lower() in NO_VAE:
        return None
    for ext in (".safetensors", ".ckpt", ".pt"):
        name = name.removesuffix(ext)
    installed = [item["model_name"] for item in compat_assets.installed_vaes(services)]
    if name not in installed:
        listed = ", ".join(installed) or "none"
        message = f"VAE {name!r} is not installed in the models folder's vae/; installed: {listed}"
        raise CompatError(422, message, field)
    return name


def vae_setting(services: Services, req: Txt2ImgRequest) -> str | None:
    """A1111's ``sd_vae`` (this request's override, else the stored option) as the native vae."""
    overrides = req.override_settings or {}
    if "sd_vae" in overrides:
        return checked_vae(services, overrides["sd_vae"], "override_settings.sd_vae")
    return checked_vae(services, compat_state(services).options.get("sd_vae"), "sd_vae")


def checkpoint_setting(services: Services, req: Txt2ImgRequest) -> str:
    """``override_settings.sd_model_checkpoint``, else the checkpoint set with /options."""
    wanted = (req.override_settings or {}).get("sd_model_checkpoint")
    if not wanted:
        stored = compat_state(services).checkpoint
        if stored is None:
            return current_checkpoint(services)
        # Set with POST /options and removed since: named where it was set, as sd_vae is.
        if services.catalog.get(stored) is None:
            names = ", ".join(m.id for m in services.catalog.list())
            message = (
                f"checkpoint {stored!r}, set with POST /options, is not installed any more; "
                f"set another (installed: {names})"
            )
            raise CompatError(422, message, "sd_model_checkpoint")
        return usable_checkpoint(services, stored, "sd_model_checkpoint")
    field = "override_settings.sd_model_checkpoint"
    return usable_checkpoint(services, _installed(services, str(wanted), field), field)


def usable_checkpoint(services: Services, model_id: str, field: str) -> str:
    """``model_id`` when it can draw on its own; a 422 naming ``field`` (where the client sent
    it) for an SDXL refiner or a broken install, which every request would otherwise refuse
    naming the native ``model``. Reads the models folder: call it off the event loop."""
    model = services.catalog.get(model_id)
    if model is not None:
        model.check_usable_alone(field)
    return model_id


def refiner_setting(services: Services, req: Txt2ImgRequest) -> str | None:
    """A1111's ``refiner_checkpoint`` (a title, file name or id; empty or "None": no refiner)
    as the native refiner's model id."""
    wanted = (req.refiner_checkpoint or "").strip()
    if wanted.lower() in ("", "none"):
        return None
    refiner = _installed(services, wanted, "refiner_checkpoint")
    model = services.catalog.get(refiner, broken=True)
    # Refused here, naming the field the client sent (the native check names "refiner").
    if model is not None and model.problem:
        message = f"model {refiner!r} cannot be used: {model.problem}"
        raise CompatError(422, message, "refiner_checkpoint")
    if model is not None and model.family != REFINER_FAMILY:
        refiners = ", ".join(m.id for m in services.catalog.list() if m.family == REFINER_FAMILY)
        message = (
            f"model {refiner!r} is not an SDXL refiner; installed refiners: {refiners or 'none'}"
        )
        raise CompatError(422, message, "refiner_checkpoint")
    return refiner


def _installed(services: Services, wanted: str, field: str) -> str:
    """The installed checkpoint ``wanted`` names (a title, file name or id); a 422 naming
    ``field`` and listing the installed ones when there is none."""
    model = resolve_checkpoint(services, wanted)
    if model is None:
        names = ", ".join(m.id for m in services.catalog.list())
        message = f"checkpoint {wanted!r} is not installed; installed: {names}"
        raise CompatError(422, message, field)
    return model
