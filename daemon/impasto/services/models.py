"""Which models exist: bundled demo models, ONNX folders in the models dir, recorded installs."""

from __future__ import annotations

import builtins
from dataclasses import replace
from pathlib import Path
from typing import cast

from impasto.fsnames import plain_name
from impasto.resources import bundled_models_dir
from impasto.services.model_entry import (
    ModelEntry,
    describe_folder,
    folder_size,
    model_defaults,
)
from impasto.store.models import ModelRecord, ModelStore
from impasto.wire import ModelType
from impasto.worker.files import (
    ADAPTER_FOLDERS,
    NotInstalledError,
    check_adapter,
    installed_adapters,
)

_ADAPTER_PROBLEMS: dict[Path, tuple[tuple[int, int, int], str]] = {}


def _adapter_problem(kind: str, name: str, path: Path) -> str:
    """Why a request naming this adapter is refused (the check requests get), '' when it can
    be used; read again only when the file (or a VAE's folder) changes."""
    try:
        st = path.stat()
    except OSError:
        return ""
    signature = (st.st_ino, st.st_mtime_ns, st.st_size)
    cached = _ADAPTER_PROBLEMS.get(path)
    if cached is not None and cached[0] == signature:
        return cached[1]
    try:
        check_adapter(path, ADAPTER_FOLDERS[kind], name, field="")
        problem = ""
    except NotInstalledError as exc:
        problem = exc.message
    _ADAPTER_PROBLEMS[path] = (signature, problem)
    return problem


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
                entry = describe_folder(folder, read_only=read_only)
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
            problem = _adapter_problem(kind, name, path)
            record = records.get(name)
            if record is not None and Path(record.path) == path:
                found.append(replace(_file_entry(record), problem=problem))
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
                    problem=problem,
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
                entry = describe_folder(folder, read_only=read_only)
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
