"""The head's side of model transfer: which files a job reads, by content, and where they are.

A node keeps its own copy of each file under its sha256, so the head names files by content.
Hashing a multi-gigabyte model takes seconds: digests are remembered per (path, size, mtime)
and computed in a thread by the caller, never on the event loop.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from impasto.resources import bundled_models_dir
from impasto.worker.files import NotInstalledError, Roots, adapter_path, model_folder, upload_path
from impasto.worker.protocol import RunJob
from impasto.worker.ray.messages import FileEntry, Manifest

BUNDLED = "bundled"  # every node ships the bundled models: nothing to send for them


class FileIndex:
    """sha256 digests of the head's files, remembered while a file's size and mtime stay."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, int], str] = {}
        self.paths: dict[str, Path] = {}  # digest -> a head file with that content
        self._lock = threading.Lock()

    def digest(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._known.get(key)
        if known is None:
            sha = hashlib.sha256()
            with path.open("rb") as fh:
                while block := fh.read(1024 * 1024):
                    sha.update(block)
            known = sha.hexdigest()
            with self._lock:
                self._known[key] = known
        with self._lock:
            self.paths[known] = path
        return known

    def entries(self, folder: Path, under: str) -> list[FileEntry]:
        """Every file below ``folder`` (or ``folder`` itself), placed at ``under`` on the node."""
        if folder.is_file():
            return [FileEntry(under, folder.stat().st_size, self.digest(folder))]
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return [
            FileEntry(
                f"{under}/{p.relative_to(folder).as_posix()}", p.stat().st_size, self.digest(p)
            )
            for p in files
        ]

    def model(self, models_dir: Path, model_id: str) -> tuple[str, str, list[FileEntry]]:
        """(key, head folder, files) of a model; bundled models and unknown names send nothing."""
        folder = model_folder(Roots(models_dir, bundled_models_dir()), model_id)
        if folder is None:
            return BUNDLED, "", []
        if not folder.resolve().is_relative_to(models_dir.resolve()):
            return BUNDLED, str(folder), []
        files = self.entries(folder, model_id)
        key = hashlib.sha256("\n".join(f"{f.path} {f.sha256}" for f in files).encode()).hexdigest()
        return key[:32], str(folder), files

    def for_model(self, models_dir: Path, model_dir: str) -> Manifest:
        """What a node needs to load the head's ``model_dir`` ahead of a job."""
        key, folder, files = self.model(models_dir, Path(model_dir).name)
        return Manifest(key=key, model_dir=folder or model_dir, files=files)

    def for_job(self, run: RunJob) -> Manifest:
        """Every head file ``run`` reads: model, refiner, adapters and uploaded images."""
        models_dir = Path(run.models_dir)
        plan = run.plan
        key, folder, files = self.model(models_dir, plan.model)
        if plan.refiner:
            refiner_key, _, refiner_files = self.model(models_dir, plan.refiner)
            files += refiner_files
            key = hashlib.sha256(f"{key} {refiner_key}".encode()).hexdigest()[:32]
        wanted: list[tuple[str, str]] = [("loras", lora.name) for lora in plan.loras]
        wanted += [("vae", plan.vae)] if plan.vae else []
        for kind, name in wanted:
            try:
                found = adapter_path(models_dir, kind, name)
            except NotInstalledError:
                continue  # the node reports it as not installed, as a local worker does
            files += self.entries(found, f"{kind}/{found.name}")
        for name in plan.embeddings:
            path = models_dir / "embeddings" / f"{name}.safetensors"
            if path.is_file():
                files += self.entries(path, f"embeddings/{path.name}")
        for ref in (plan.init_image, plan.mask_image):
            if ref:
                try:
                    path = upload_path(Path(run.uploads_dir), ref)
                except NotInstalledError:
                    continue
                if path.is_file():
                    files += self.entries(path, f"uploads/{path.name}")
        return Manifest(key=key, model_dir=folder, files=files)
