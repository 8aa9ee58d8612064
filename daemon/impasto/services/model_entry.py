"""One installed model as the API lists it (``ModelEntry``), and a model folder read into one:
its family and parts, problems, size and card, cached until the folder changes."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from impasto.engine.families import DEFAULT_FAMILY, FamilyDefaults, family_defaults
from impasto.engine.model_folder import open_model_folder, open_refiner_folder
from impasto.engine.runs_on import Capability, assess_folder
from impasto.engine.types import ModelFolderError
from impasto.services.detect import clip_skip_limit, detect_folder
from impasto.services.errors import FieldError
from impasto.services.safety import TEST_MODEL_MARKER  # its presence marks a test model
from impasto.wire import ModelType

# The bundled demo models are tiny random networks: small images keep them instant.
DEMO_SIZE = 256


def model_defaults(family: str, *, demo: bool = False) -> FamilyDefaults:
    """What a request for a model of ``family`` gets: the family table's defaults."""
    defaults = family_defaults(family)
    if demo:
        return replace(defaults, width=DEMO_SIZE, height=DEMO_SIZE)
    return defaults


@dataclass(frozen=True)
class ModelEntry:
    """One installed model as the API lists it; checkpoints are folders, the rest single files."""

    id: str
    name: str
    path: Path
    family: str
    read_only: bool
    inpaint: bool
    prediction_type: str
    size: int
    # Trained for zero terminal SNR: schedules from the top sigma (Karras) do not suit it.
    zero_snr: bool = False
    defaults: FamilyDefaults = field(default_factory=lambda: family_defaults(DEFAULT_FAMILY))
    type: ModelType = "checkpoint"
    precision: str = ""
    version: str = ""
    description: str = ""
    hash: str = ""
    source: str = ""
    license: str = ""
    active: bool = True
    # A bundled random-weight model for tests (TEST_MODEL_MARKER in its folder): usable by id,
    # but listed only when the show_test_models setting asks for it. A copy the user put in
    # the models folder (impasto pull of that folder) is theirs, and listed.
    test: bool = False
    created_at: float | None = None
    updated_at: float | None = None
    # Which execution providers can run its graphs (None for single files or unreadable graphs).
    capability: Capability | None = None
    # Why the model cannot be used (a truncated or unreadable UNet, ...); empty when it can.
    problem: str = ""
    # The largest clip skip its text encoders were exported for (1: none; detect.py).
    clip_skip_max: int = 1

    def check_usable_alone(self, field_name: str) -> None:
        """FieldError naming ``field_name`` for a model that cannot be used (its ``problem``)
        or only runs beside another (an SDXL refiner): generating with it and loading it are
        refused alike."""
        if self.problem:
            raise FieldError(field_name, f"model {self.id!r} cannot be used: {self.problem}")
        if self.family == REFINER_FAMILY:
            raise FieldError(
                field_name,
                f"{self.id!r} is an SDXL refiner; pass it as refiner with an SDXL model",
            )


REFINER_FAMILY = "sdxl-refiner"


def folder_size(path: Path) -> int:
    """Bytes of every file under ``path``; files removed while it counts are left out."""
    total = 0
    for _folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(_folder, name)).st_size
    return total


_DESCRIBED: dict[tuple[Path, bool], tuple[tuple[int, ...], ModelEntry | None]] = {}


def _signature(folder: Path) -> tuple[int, ...]:
    """Changes whenever the folder is replaced or a file of it (one or two levels down: the
    configs, a component's graph, a tokenizer file) is added, removed or rewritten."""
    paths = [folder]
    try:
        children = sorted(folder.iterdir())
    except OSError:
        children = []
    for child in children:
        paths.append(child)
        if child.is_dir() and not child.is_symlink():
            with contextlib.suppress(OSError):
                paths += sorted(child.iterdir())
    parts: list[int] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            parts += [0, 0, 0]
            continue
        parts += [st.st_ino, st.st_mtime_ns, st.st_size]
    return tuple(parts)


def describe_folder(folder: Path, *, read_only: bool) -> ModelEntry | None:
    """A folder's entry; reading ONNX headers and sizing folders is cached per signature."""
    key = (folder, read_only)
    signature = _signature(folder)
    cached = _DESCRIBED.get(key)
    if cached is not None and cached[0] == signature:
        return cached[1]
    try:
        entry = _describe_uncached(folder, read_only=read_only)
    except OSError as exc:
        if not folder.is_dir():
            return None  # removed while it was read (a removal in progress): no model now
        return _unreadable(folder, read_only, f"unusable: it could not be read ({exc.strerror})")
    if not folder.is_dir():
        return None  # removed while it was read: what was read describes nothing now
    _DESCRIBED[key] = (signature, entry)
    return entry


def _unreadable(folder: Path, read_only: bool, problem: str) -> ModelEntry:
    """The entry of a folder that cannot be used: listed, so the user sees which and why."""
    return ModelEntry(
        id=folder.name,
        name=folder.name,
        path=folder,
        family="",
        read_only=read_only,
        inpaint=False,
        prediction_type="",
        size=folder_size(folder),
        test=read_only and (folder / TEST_MODEL_MARKER).is_file(),
        problem=problem,
    )


def _describe_uncached(folder: Path, *, read_only: bool) -> ModelEntry | None:
    if not (folder / "model_index.json").is_file() or not (folder / "unet").is_dir():
        return None
    try:
        found = detect_folder(folder)
    except (ValueError, OSError) as exc:
        if not folder.is_dir():
            raise FileNotFoundError(str(folder)) from exc  # gone: not an unusable model
        # Listed, not dropped: the user sees which model is broken and why.
        return _unreadable(folder, read_only, f"unusable: {exc}; reinstall it or remove the folder")
    if found.layout != "onnx":
        return None
    problem = _missing_part(folder, found.family)
    card = _model_card(folder)
    return ModelEntry(
        id=folder.name,
        name=folder.name,
        path=folder,
        family=found.family,
        read_only=read_only,
        inpaint=found.inpaint,
        prediction_type=found.prediction_type,
        zero_snr=found.zero_snr,
        size=folder_size(folder),
        defaults=replace(model_defaults(found.family, demo=read_only), **card["defaults"]),
        precision=found.precision,
        test=read_only and (folder / TEST_MODEL_MARKER).is_file(),
        capability=assess_folder(folder),
        description=str(card.get("description", "")),
        clip_skip_max=_clip_skip_max(folder, found.family),
        problem=problem,
    )


def _missing_part(folder: Path, family: str) -> str:
    """Why the engine would refuse to open ``folder`` (a missing tokenizer, scheduler config,
    text encoder or VAE decoder, a bad config), by the engine's own checks; '' when it opens.

    Only file presence and configs are read (no weights), so listing stays fast.
    """
    try:
        if family == REFINER_FAMILY:
            open_refiner_folder(folder)
        else:
            open_model_folder(folder)
    except ModelFolderError as exc:
        where = Path(exc.path)
        shown = where.relative_to(folder).as_posix() if where.is_relative_to(folder) else where.name
        return f"unusable: {shown}: {exc.message}; reinstall it or remove the folder"
    return ""


def _clip_skip_max(folder: Path, family: str) -> int:
    try:
        return clip_skip_limit(folder, family)
    except (ValueError, OSError):  # an unreadable text encoder fails when the model opens
        return 1


def _model_card(folder: Path) -> dict[str, Any]:
    """A folder's optional ``impasto.json``: its description and recommended settings.

    Only FamilyDefaults' fields, with values of their type, are taken from its "defaults"; a
    bad file is ignored.
    """
    try:
        card = json.loads((folder / "impasto.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        card = {}
    if not isinstance(card, dict):
        card = {}
    defaults = card.get("defaults")
    defaults = defaults if isinstance(defaults, dict) else {}
    base = family_defaults(DEFAULT_FAMILY)
    kinds = {name: type(getattr(base, name)) for name in base.__dataclass_fields__}
    card["defaults"] = {
        key: kinds[key](value)
        for key, value in defaults.items()
        if key in kinds and _fits(kinds[key], value)
    }
    return card


def _fits(kind: type, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, kind) or (kind is float and isinstance(value, int))
