"""Which models exist: bundled demo models, ONNX folders in the models dir, recorded installs."""

from __future__ import annotations

import builtins
import contextlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from impasto.engine.families import DEFAULT_FAMILY, FamilyDefaults, family_defaults
from impasto.engine.model_folder import open_model_folder, open_refiner_folder
from impasto.engine.runs_on import Capability, assess_folder
from impasto.engine.types import ModelFolderError
from impasto.fsnames import plain_name
from impasto.resources import bundled_models_dir
from impasto.services.detect import clip_skip_limit, detect_folder
from impasto.services.errors import FieldError
from impasto.services.safety import TEST_MODEL_MARKER  # its presence marks a test model
from impasto.store.models import ModelRecord, ModelStore
from impasto.wire import ModelType
from impasto.worker.files import installed_adapters

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


def _describe(folder: Path, *, read_only: bool) -> ModelEntry | None:
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


def _with_record(entry: ModelEntry, record: ModelRecord | None) -> ModelEntry:
    if record is None or Path(record.path) != entry.path:
        return entry
    family = record.family or entry.family
    return replace(
        entry,
        name=record.name or entry.name,
        family=family,
        defaults=model_defaults(family, demo=entry.read_only),
        version=record.version,
        description=record.description,
        hash=record.hash,
        source=record.source,
        license=record.license,
        active=record.active,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def _file_entry(record: ModelRecord) -> ModelEntry:
    return ModelEntry(
        id=record.id,
        name=record.name,
        path=Path(record.path),
        family=record.family,
        read_only=False,
        inpaint=False,
        prediction_type="",
        size=record.size,
        type=record.type,
        precision=record.precision,
        version=record.version,
        description=record.description,
        hash=record.hash,
        source=record.source,
        license=record.license,
        active=record.active,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


class ModelCatalog:
    """Lists and resolves models; the models dir wins over a bundled model of the same id."""

    def __init__(
        self,
        models_dir: Path,
        bundled_dir: Path | None = None,
        store: ModelStore | None = None,
        *,
        show_test_models: bool = True,
        default_model: str = "",
    ) -> None:
        self.models_dir = models_dir
        self.bundled_dir = bundled_dir or bundled_models_dir()
        self.store = store
        self.show_test_models = show_test_models
        self.default_model = default_model

    def _shown(self, entry: ModelEntry) -> bool:
        return not entry.test or self.show_test_models or entry.id == self.default_model

    def _records(self) -> dict[str, ModelRecord]:
        return {r.id: r for r in self.store.list_models()} if self.store else {}

    def list(self, *, everything: bool = False, broken: bool = False) -> list[ModelEntry]:
        """Checkpoints a job can generate with; test models too when shown or ``everything``,
        and those that cannot be used (their ``problem`` set) with ``broken``."""
        return [e for e in self._checkpoints(everything=everything) if broken or not e.problem]

    def _checkpoints(self, *, everything: bool = False) -> builtins.list[ModelEntry]:
        """Every checkpoint folder, the unusable ones included (with their ``problem``)."""
        records = self._records()
        found: dict[str, ModelEntry] = {}
        for root, read_only in ((self.bundled_dir, True), (self.models_dir, False)):
            if not root.is_dir():
                continue
            # Dot-folders are installs or removals in progress, never models.
            for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] != "."):
                entry = _describe(folder, read_only=read_only)
                if entry:
                    found[entry.id] = _with_record(entry, records.get(entry.id))
        return [e for e in found.values() if everything or self._shown(e)]

    def list_all(self) -> builtins.list[ModelEntry]:
        """Checkpoints (unusable ones too, with their problem) plus LoRAs, embeddings and VAEs:
        the installed ones and those put in the models folder's loras/, embeddings/ and vae/
        by hand (a checkpoint's id wins over an adapter's name)."""
        entries = {e.id: e for e in self._checkpoints()}
        for record in self._records().values():
            known = record.id in entries
            if record.type != "checkpoint" and not known and Path(record.path).exists():
                entries[record.id] = _file_entry(record)
        for entry in self._adapters():
            entries.setdefault(entry.id, entry)
        return sorted(entries.values(), key=lambda e: e.id)

    def _adapters(self) -> builtins.list[ModelEntry]:
        """The adapters in the models folder's adapter folders, as the model list shows them."""
        records = self._records()
        found = []
        for kind, name, path in installed_adapters(self.models_dir):
            record = records.get(name)
            if record is not None and Path(record.path) == path:
                found.append(_file_entry(record))
                continue
            try:
                size = folder_size(path) if path.is_dir() else path.stat().st_size
            except OSError:
                continue  # removed while the list was made
            found.append(
                ModelEntry(
                    id=name,
                    name=name,
                    path=path,
                    family="",
                    read_only=False,
                    inpaint=False,
                    prediction_type="",
                    size=size,
                    type=cast(ModelType, kind),
                )
            )
        return found

    def get(self, model_id: str, *, broken: bool = False) -> ModelEntry | None:
        """The checkpoint ``model_id``, or None; one that cannot be used (``problem``) only
        with ``broken`` (to show, refuse by name or remove it)."""
        # Ids are folder names: anything with a separator or dots could leave the folder.
        if not plain_name(model_id):
            return None
        for root, read_only in ((self.models_dir, False), (self.bundled_dir, True)):
            folder = root / model_id
            if folder.is_dir():
                entry = _describe(folder, read_only=read_only)
                if entry and (broken or not entry.problem):
                    record = self.store.get(model_id) if self.store else None
                    return _with_record(entry, record)
        return None

    def fast_decoder_for(self, family: str) -> str | None:
        """The id of an installed fast decoder (TAESD) for a model of ``family``, or None.

        TAESD decodes SD 1.x/2.x latents and TAESDXL SDXL's; an install records which.
        """
        xl = family.startswith("sdxl")
        for record in sorted(self._records().values(), key=lambda r: r.id):
            folder = Path(record.path)
            if record.type != "vae" or not (folder / "taesd_decoder" / "model.onnx").is_file():
                continue
            if record.family.startswith("sdxl") == xl:
                return record.id
        return None

    def find(self, model_id: str) -> ModelEntry | None:
        """Any installed model ``model_id``: a checkpoint (an unusable one too, with its
        ``problem``) or a single-file model."""
        entry = self.get(model_id, broken=True)
        if entry is not None or self.store is None:
            return entry
        record = self.store.get(model_id)
        if record and record.type != "checkpoint" and Path(record.path).exists():
            return _file_entry(record)
        return next((e for e in self._adapters() if e.id == model_id), None)
