"""Which models exist: bundled demo models, ONNX folders in the models dir, recorded installs."""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from impasto.resources import bundled_models_dir
from impasto.services.detect import detect_folder
from impasto.store.models import ModelRecord, ModelStore

DEFAULT_SETTINGS = {
    "width": 512,
    "height": 512,
    "steps": 20,
    "cfg_scale": 7.0,
    "sampler": "euler_a",
}
# Distilled models sample in a step or few without guidance; XL models are trained at 1024.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "sd-turbo": {"steps": 1, "cfg_scale": 0.0, "sampler": "euler_a"},
    "sdxl-turbo": {"steps": 1, "cfg_scale": 0.0, "sampler": "euler_a"},
    "lcm": {"steps": 4, "cfg_scale": 1.0},
}


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
    defaults: dict[str, Any] = field(default_factory=dict)
    type: str = "checkpoint"
    precision: str = ""
    version: str = ""
    description: str = ""
    hash: str = ""
    source: str = ""
    license: str = ""
    active: bool = True
    created_at: float | None = None
    updated_at: float | None = None


def folder_size(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


_DESCRIBED: dict[tuple[Path, bool], tuple[tuple[int, ...], ModelEntry | None]] = {}


def _signature(folder: Path) -> tuple[int, ...]:
    """Changes whenever the folder is replaced or its key files are rewritten."""
    parts: list[int] = []
    for path in (folder, folder / "model_index.json", folder / "unet", folder / "unet/model.onnx"):
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
    entry = _describe_uncached(folder, read_only=read_only)
    _DESCRIBED[key] = (signature, entry)
    return entry


def _describe_uncached(folder: Path, *, read_only: bool) -> ModelEntry | None:
    if not (folder / "model_index.json").is_file() or not (folder / "unet").is_dir():
        return None
    try:
        found = detect_folder(folder)
    except (ValueError, OSError):
        return None
    if found.layout != "onnx":
        return None
    unet_cfg_file = folder / "unet" / "config.json"
    try:
        unet_cfg = json.loads(unet_cfg_file.read_text()) if unet_cfg_file.is_file() else {}
    except (OSError, ValueError):
        unet_cfg = {}
    sample = int(unet_cfg.get("sample_size", 64)) * 8
    defaults = dict(DEFAULT_SETTINGS)
    if read_only:
        # The demo models are tiny random networks: small images keep them instant.
        defaults.update(width=256, height=256, steps=12)
    elif sample > 0:
        defaults.update(width=sample, height=sample)
    defaults.update(FAMILY_DEFAULTS.get(found.family, {}))
    card = _model_card(folder)
    defaults.update(card.get("defaults", {}))
    return ModelEntry(
        id=folder.name,
        name=folder.name,
        path=folder,
        family=found.family,
        read_only=read_only,
        inpaint=found.inpaint,
        prediction_type=found.prediction_type,
        size=folder_size(folder),
        defaults=defaults,
        precision=found.precision,
        description=str(card.get("description", "")),
    )


def _model_card(folder: Path) -> dict[str, Any]:
    """A folder's optional ``impasto.json``: its description and recommended settings.

    Only the keys of DEFAULT_SETTINGS are taken from its "defaults"; a bad file is ignored.
    """
    try:
        card = json.loads((folder / "impasto.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(card, dict):
        return {}
    defaults = card.get("defaults")
    defaults = defaults if isinstance(defaults, dict) else {}
    card["defaults"] = {k: v for k, v in defaults.items() if k in DEFAULT_SETTINGS}
    return card


def _with_record(entry: ModelEntry, record: ModelRecord | None) -> ModelEntry:
    if record is None or Path(record.path) != entry.path:
        return entry
    return replace(
        entry,
        name=record.name or entry.name,
        family=record.family or entry.family,
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
        self, models_dir: Path, bundled_dir: Path | None = None, store: ModelStore | None = None
    ) -> None:
        self.models_dir = models_dir
        self.bundled_dir = bundled_dir or bundled_models_dir()
        self.store = store

    def _records(self) -> dict[str, ModelRecord]:
        return {r.id: r for r in self.store.list_models()} if self.store else {}

    def list(self) -> list[ModelEntry]:
        """Checkpoints a job can generate with."""
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
        return list(found.values())

    def list_all(self) -> builtins.list[ModelEntry]:
        """Checkpoints plus installed LoRAs, embeddings and VAEs."""
        entries = {e.id: e for e in self.list()}
        for record in self._records().values():
            known = record.id in entries
            if record.type != "checkpoint" and not known and Path(record.path).exists():
                entries[record.id] = _file_entry(record)
        return sorted(entries.values(), key=lambda e: e.id)

    def get(self, model_id: str) -> ModelEntry | None:
        """The checkpoint ``model_id``, or None."""
        # Ids are folder names: anything with a separator or dots could leave the folder.
        if "/" in model_id or "\\" in model_id or model_id in {"", ".", ".."}:
            return None
        if model_id.startswith("."):
            return None
        for root, read_only in ((self.models_dir, False), (self.bundled_dir, True)):
            folder = root / model_id
            if folder.is_dir():
                entry = _describe(folder, read_only=read_only)
                if entry:
                    record = self.store.get(model_id) if self.store else None
                    return _with_record(entry, record)
        return None

    def find(self, model_id: str) -> ModelEntry | None:
        """Any installed model ``model_id``: a checkpoint or a single-file model."""
        entry = self.get(model_id)
        if entry is not None or self.store is None:
            return entry
        record = self.store.get(model_id)
        if record and record.type != "checkpoint" and Path(record.path).exists():
            return _file_entry(record)
        return None
