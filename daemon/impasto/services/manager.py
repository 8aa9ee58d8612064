"""Model operations beyond listing: describe, remove, and load/unload in the workers."""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import time
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from impasto.services.errors import ConflictError, FieldError, NotFoundError
from impasto.services.events import EventBus
from impasto.services.installs import Installer
from impasto.services.jobs import JobService
from impasto.services.model_entry import ModelEntry
from impasto.services.models import ModelCatalog
from impasto.store.models import ModelStore
from impasto.wire import QUERY_LIMITS, LoadedModel, LoadResult, utc
from impasto.worker.files import ADAPTER_FOLDERS
from impasto.worker.protocol import LoadModel, UnloadModels
from impasto.worker.supervisor import Supervisor

_KEEP_ALIVE = QUERY_LIMITS["keep_alive"]
# Seconds a load waits for the workers to hold the model (one busy with a job loads it after).
LOAD_WAIT_S = 600.0


def check_keep_alive(seconds: float) -> float:
    """``seconds`` when it is a finite number in wire.KeepAlive's range; FieldError otherwise."""
    low, high = _KEEP_ALIVE.minimum or 0, _KEEP_ALIVE.maximum or 0
    if not math.isfinite(seconds) or not low <= seconds <= high:
        raise FieldError("keep_alive", _KEEP_ALIVE.rule)
    return seconds


class ModelManager:
    """What the /models routes call; installs are delegated to the Installer."""

    def __init__(
        self,
        catalog: ModelCatalog,
        store: ModelStore,
        installer: Installer,
        jobs: JobService,
        bus: EventBus,
        supervisor: Supervisor | None,
        keep_alive: float,
        ort_cache: Path | None = None,
        load_wait: float = LOAD_WAIT_S,
    ) -> None:
        """``ort_cache``: where the workers keep ONNX Runtime's optimised graphs, whose
        entries for a model go with it; ``load_wait``: the longest a load waits for them."""
        self.catalog = catalog
        self.store = store
        self.installer = installer
        self.jobs = jobs
        self.bus = bus
        self.supervisor = supervisor
        self.keep_alive = keep_alive
        self.ort_cache = ort_cache
        self.load_wait = load_wait

    def relocate_adapters(self) -> int:
        """Move LoRAs and embeddings installed as ``MODELS/ID/FILE.safetensors`` (before they
        went to ``loras/`` and ``embeddings/``, where requests find them) to their folder;
        returns how many moved (blocking, at start)."""
        moved = 0
        for record in self.store.list_models():
            path = Path(record.path)
            folder = ADAPTER_FOLDERS.get(record.type)
            if folder is None or record.type == "vae" or not path.is_file():
                continue
            if path.parent != self.catalog.models_dir / record.id:
                continue
            final = self.catalog.models_dir / folder / f"{record.id}.safetensors"
            if final.exists():
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            path.rename(final)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # its folder held that file alone
            self.store.put(replace(record, path=str(final)))
            moved += 1
        return moved

    def get(self, model_id: str) -> ModelEntry:
        """One installed model; NotFoundError when there is none."""
        entry = self.catalog.find(model_id)
        if entry is None:
            raise NotFoundError(f"model {model_id!r} is not installed")
        return entry

    def users(self, model_id: str) -> list[str]:
        """Ids of queued or running jobs that use ``model_id``: as their model, or as the
        refiner, a LoRA, an embedding, the VAE or the fast decoder their plan names."""
        users = list(self.jobs.store.active_ids_using(model_id))
        for job in self.jobs.store.list_active():
            if job.id not in users and model_id in _plan_names(job.plan):
                users.append(job.id)
        return users

    async def remove(self, model_id: str, *, force: bool = False) -> ModelEntry:
        """Delete an installed model: unload it, move it out of the models dir, drop its row."""
        entry = await asyncio.to_thread(self.get, model_id)  # reads the models folder
        if entry.read_only:
            raise ConflictError(f"{model_id} is a bundled model and cannot be removed")
        users = await asyncio.to_thread(self.users, model_id)  # reads every active plan
        if users and not force:
            raise ConflictError(
                f"{model_id} is used by {len(users)} queued or running job(s) "
                f"({', '.join(users[:5])}); cancel them or remove with force=true"
            )
        if entry.type == "checkpoint":
            await self._send(UnloadModels(model_dir=str(entry.path)))
        folder = self.catalog.models_dir / model_id
        target = folder if folder.exists() else Path(entry.path)
        if not target.resolve().is_relative_to(self.catalog.models_dir.resolve()):
            raise ConflictError(f"{model_id} lives outside the models dir; delete it by hand")
        # One rename takes it out of the listing at once; the slow delete happens after.
        trash = self.catalog.models_dir / f".{model_id}.{uuid.uuid4().hex[:8]}.deleting"
        trash_was_folder = target.is_dir()  # a checkpoint or VAE: graphs a worker cached
        try:
            target.rename(trash)
        except FileNotFoundError:
            # Another removal (or a hand) took it first: one answer removes it, the rest 404.
            raise NotFoundError(f"model {model_id!r} is not installed (just removed)") from None
        except OSError as exc:
            raise ConflictError(
                f"{model_id} could not be removed ({exc.strerror}); check the models folder's "
                "permissions, or delete its folder by hand"
            ) from None
        self.store.delete(model_id)
        # Gigabytes: not on the event loop. A LoRA or embedding is one file.
        await asyncio.to_thread(_delete, trash)
        if self.ort_cache is not None and trash_was_folder:
            await asyncio.to_thread(_forget_cached, self.ort_cache, target)
        self.bus.publish("model_removed", None, {"model_id": model_id})
        return entry

    def _handles(self) -> list[Any]:
        return self.supervisor.live_workers() if self.supervisor else []

    async def _send(self, message: Any) -> int:
        return await self.supervisor.broadcast(message) if self.supervisor else 0

    def _checkpoint(self, model_id: str) -> ModelEntry:
        """The checkpoint ``model_id`` (an unusable one too); NotFoundError when there is
        none, naming what ``model_id`` is when it is a LoRA, an embedding or a VAE."""
        entry = self.catalog.find(model_id)
        if entry is None:
            raise NotFoundError(f"checkpoint {model_id!r} is not installed")
        if entry.type != "checkpoint":
            raise FieldError(
                "model_id",
                f"{model_id!r} is a {entry.type}, which is applied per request; only a "
                "checkpoint is loaded into the workers",
            )
        return entry

    async def load(self, model_id: str, keep_alive: float | None = None) -> LoadResult:
        """Load ``model_id`` in every live worker and wait until each holds it (a worker busy
        with a job loads it after the job), at most ``load_wait`` seconds; FieldError with the
        worker's reason when one could not load it (ONNX Runtime refused a graph, memory)."""
        entry = await asyncio.to_thread(self._checkpoint, model_id)  # reads the models folder
        entry.check_usable_alone("model_id")  # a worker would fail to load it alone
        # 0 is a keep-alive of its own (drop the model once it is idle), not "the default".
        seconds = check_keep_alive(self.keep_alive if keep_alive is None else keep_alive)
        handles = self._handles()
        if not handles:
            raise ConflictError("no worker is running to load the model into")
        message = LoadModel(str(entry.path), seconds)
        answers = []
        for handle in handles:
            answers.append(handle.expect_load(message.model_dir))
            await handle.send(message)
        done, waiting = await asyncio.wait(answers, timeout=self.load_wait)
        for answer in waiting:
            answer.cancel()
        errors = sorted({answer.result() for answer in done} - {""})
        if errors:
            reason = self.jobs.runner.public_error("; ".join(errors))
            raise FieldError("model_id", f"{model_id!r} could not be loaded: {reason}")
        return LoadResult(model=model_id, workers=len(handles), loading=len(waiting))

    async def unload(self, model_id: str) -> int:
        """Ask every live worker to drop ``model_id``: an installed checkpoint, one damaged
        since it was loaded (its ``problem`` set), or one a worker holds whose folder is gone."""
        held = [
            item.get("model_dir", "")
            for handle in self._handles()
            for item in handle.loaded
            if Path(item.get("model_dir", "")).name == model_id
        ]
        try:
            entry = await asyncio.to_thread(self._checkpoint, model_id)
        except NotFoundError:
            if not held:
                raise
            paths = set(held)
        else:
            paths = {str(entry.path)}
        sent = 0
        for path in sorted(paths):
            sent = await self._send(UnloadModels(model_dir=path))
        return sent

    def loaded(self) -> list[LoadedModel]:
        """What each worker holds and when it expires, like ``ollama ps``."""
        by_path = {str(m.path): m for m in self.catalog.list(everything=True, broken=True)}
        out = []
        now = time.time()
        for handle in self._handles():
            for item in handle.loaded:
                entry = by_path.get(item.get("model_dir", ""))
                expires = _finite(item.get("expires_at"))
                out.append(
                    LoadedModel(
                        model=entry.id if entry else Path(item.get("model_dir", "")).name,
                        path=self.jobs.runner.public_error(str(item.get("model_dir", ""))),
                        worker=handle.id,
                        size=entry.size if entry else 0,
                        expires_at=utc(expires) if expires else None,
                        expires_in=max(0.0, round(expires - now, 1)) if expires else 0.0,
                    )
                )
        return out


def _plan_names(plan: dict[str, Any] | None) -> set[str]:
    """The installed models a stored plan names besides its model."""
    if not plan:
        return set()
    names = {plan.get("refiner"), plan.get("vae"), plan.get("fast_decoder")}
    names.update(plan.get("embeddings") or [])
    names.update(lora.get("name") for lora in plan.get("loras") or [] if isinstance(lora, dict))
    return {name for name in names if isinstance(name, str) and name}


def worker_expiry(value: Any) -> datetime | None:
    """A worker-reported expiry (Unix seconds) as a time; None for nothing or nonsense."""
    seconds = _finite(value)
    return utc(seconds) if seconds else None


def _finite(value: Any) -> float:
    """A worker-reported time as a finite float; 0.0 for anything else (never a 500)."""
    try:
        number = float(value or 0)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) and 0 <= number < 1e11 else 0.0


def _forget_cached(cache_dir: Path, model_root: Path) -> None:
    """Delete ONNX Runtime's optimised copies of a removed model's graphs (blocking)."""
    from impasto.engine.session_cache import forget_model  # imports onnxruntime: only here

    forget_model(cache_dir, model_root)


def _delete(path: Path) -> None:
    """Remove a file or a folder tree, what is already gone skipped (blocking)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
