"""Generation jobs: submit, follow, cancel, prioritise, delete; and the worker-facing callbacks."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from impasto.engine.schedulers import SAMPLERS, sampler_schedules
from impasto.plugins import PluginError, PluginRejected
from impasto.services.errors import ConflictError, FieldError, NotFoundError, QueueFullError
from impasto.services.events import EventBus
from impasto.services.images import UploadStore
from impasto.services.models import ModelCatalog
from impasto.services.supervisor import Supervisor, preview_data_url
from impasto.store.jobs import InvalidCursorError
from impasto.worker.protocol import JobDone, RunJob, Started, StepProgress

log = logging.getLogger("impasto.jobs")

FINISHED = {"completed", "failed", "cancelled"}


@dataclass(frozen=True)
class JobOptions:
    """The knobs of the job service, taken from settings."""

    output_dir: Path
    default_model: str
    max_queue: int
    max_attempts: int
    preview_every: int
    keep_alive: float


class JobService:
    """Owns the job life cycle; the API calls the public methods, the supervisor the on_* ones."""

    def __init__(
        self,
        store: Any,
        bus: EventBus,
        catalog: ModelCatalog,
        uploads: UploadStore,
        options: JobOptions,
    ) -> None:
        self.store = store
        self.bus = bus
        self.catalog = catalog
        self.uploads = uploads
        self.options = options
        self.paused = False
        self.supervisor: Supervisor | None = None
        # The plugin host (impasto.plugins.manager.PluginHost); None runs no plugins.
        self.plugins: Any = None
        # The latest preview JPEG of each running job, for A1111's /progress current_image.
        self.previews: dict[str, bytes] = {}

    # --- API side -------------------------------------------------------------------------

    def submit(
        self, request: dict[str, Any], idempotency_key: str | None = None
    ) -> tuple[Any, bool]:
        """Run the plugins' preprocessors, validate what the schema cannot, store, wake a worker."""
        return self._enqueue(self.prepare(request), idempotency_key)

    async def submit_async(
        self, request: dict[str, Any], idempotency_key: str | None = None
    ) -> tuple[Any, bool]:
        """:meth:`submit` with the blocking part (plugins, decoding init images, reading model
        folders) in a thread, so a big upload never stalls the event loop."""
        prepared = await asyncio.to_thread(self.prepare, request)
        return self._enqueue(prepared, idempotency_key)

    def prepare(self, request: dict[str, Any]) -> dict[str, Any]:
        """The request after the plugins and the checks the schema cannot make (blocking)."""
        return self._normalise(self._preprocess(request))

    def _enqueue(self, request: dict[str, Any], idempotency_key: str | None) -> tuple[Any, bool]:
        if self.store.count_queued() >= self.options.max_queue:
            raise QueueFullError(
                f"the queue holds {self.options.max_queue} jobs, its limit; retry later", 10
            )
        job, created = self.store.create(
            request,
            model=request["model"],
            prompt=request["prompt"],
            priority=request.get("priority", 0),
            idempotency_key=idempotency_key,
            total_steps=request["steps"],
        )
        if created:
            self.bus.publish("queued", job.id, {"position": self.store.position(job.id)})
            if self.supervisor:
                self.supervisor.wake()
        return job, created

    def _preprocess(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.plugins is None:
            return request
        try:
            result: dict[str, Any] = self.plugins.preprocess_request(request)
        except PluginRejected as exc:
            raise FieldError(exc.field, exc.message) from None
        except PluginError as exc:
            raise FieldError("plugins", exc.message) from None
        return result

    def _normalise(self, request: dict[str, Any]) -> dict[str, Any]:
        request = dict(request)
        model_id = request.get("model") or self.options.default_model
        model = self.catalog.get(model_id)
        if model is None:
            names = ", ".join(m.id for m in self.catalog.list()) or "none"
            raise FieldError("model", f"model {model_id!r} is not installed; installed: {names}")
        request["model"] = model.id
        if self._is_refiner(model.path):
            raise FieldError(
                "model", f"{model.id!r} is an SDXL refiner; pass it as refiner with an SDXL model"
            )
        sampler = request.get("sampler", "euler_a")
        if sampler not in SAMPLERS:
            raise FieldError(
                "sampler", f"unknown sampler {sampler!r}; one of {', '.join(SAMPLERS)}"
            )
        schedule = request.get("schedule", "default")
        if schedule not in sampler_schedules(sampler):
            allowed = ", ".join(sampler_schedules(sampler))
            raise FieldError("schedule", f"{sampler} supports the schedules: {allowed}")
        request["loras"] = [
            {
                "name": lora["name"],
                "weight": lora.get("weight", 1.0),
                "path": str(installed_adapter(self.catalog.models_dir, "loras", lora["name"])),
            }
            for lora in request.get("loras") or []
        ]
        if request.get("vae"):
            vae = installed_adapter(self.catalog.models_dir, "vae", request["vae"])
            request["vae_path"] = str(vae)
        if request.get("refiner"):
            request["refiner_path"] = str(self._refiner_path(request["refiner"]))
        text = f"{request.get('prompt', '')} {request.get('negative_prompt', '')}"
        request["embeddings"] = [str(p) for p in embeddings_in(self.catalog.models_dir, text)]
        size = (request["width"], request["height"])
        for key, mode in (("init_image", "RGB"), ("mask_image", "L")):
            value = request.get(key)
            if not value:
                request[key] = None
                continue
            upload_id, image = self.uploads.resolve(value, key)
            if image.size != size:
                image = image.convert(mode).resize(size)
                upload_id, _ = self.uploads.save_image(image)
            request[key] = f"upload:{upload_id}"
        if request.get("mask_image") and not request.get("init_image"):
            raise FieldError("mask_image", "a mask needs an init_image to paint into")
        return request

    def get(self, job_id: str) -> Any:
        job = self.store.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def position(self, job_id: str) -> int | None:
        return self.store.position(job_id)

    async def cancel(self, job_id: str) -> Any:
        job = self.get(job_id)
        if job.status in FINISHED:
            raise ConflictError(f"job {job_id} is already {job.status}")
        if job.status == "queued" and self.store.cancel_queued(job_id):
            self.bus.publish("cancelled", job_id, {})
            return self.get(job_id)
        if self.supervisor and await self.supervisor.cancel(job_id):
            return self.get(job_id)
        # No worker runs it (it died, or recording the job failed): cancel it here.
        if self.store.mark_cancelled(job_id) is not None:
            self.previews.pop(job_id, None)
            self.bus.publish("cancelled", job_id, {})
        return self.get(job_id)

    def set_priority(self, job_id: str, priority: int) -> Any:
        self.get(job_id)
        job = self.store.set_priority(job_id, priority)
        if job is None:
            raise ConflictError(
                f"job {job_id} is not queued; only queued jobs can be reprioritised"
            )
        self.bus.publish("queue", None, {"paused": self.paused})
        return job

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        if job.status not in FINISHED:
            raise ConflictError(f"job {job_id} is {job.status}; cancel it before deleting it")
        for result in job.results:
            path = Path(result.get("path", ""))
            if path.is_file() and path.resolve().is_relative_to(self.options.output_dir.resolve()):
                path.unlink()
        self.store.delete(job_id)
        self.bus.publish("deleted", job_id, {})

    def list_active(self) -> list[Any]:
        """Every queued or running job (prefer :meth:`queue_page`: this grows with the queue)."""
        return list(self.store.list_active())

    def list_processing(self) -> list[Any]:
        """The running jobs, oldest start first."""
        return list(self.store.list_processing())

    def queue_page(self, limit: int, offset: int) -> tuple[list[tuple[Any, int | None]], int]:
        """One page of the active jobs with their positions, and how many are active in all.

        Blocking SQL that grows with the queue: call it in a thread.
        """
        page = self.store.active_page(limit=limit, offset=offset)
        running, queued = self.store.count_active()
        return page, running + queued

    def positions(self, job_ids: list[str]) -> dict[str, int]:
        """Queue positions of the queued ones among ``job_ids``, in one query."""
        return self.store.positions(job_ids)

    def history(self, **filters: Any) -> tuple[list[Any], str | None]:
        try:
            items, cursor = self.store.history(**filters)
        except InvalidCursorError:
            raise FieldError("cursor", "is not a cursor this server returned") from None
        return list(items), cursor

    def set_paused(self, paused: bool) -> bool:
        self.paused = paused
        self.bus.publish("queue", None, {"paused": paused})
        if not paused and self.supervisor:
            self.supervisor.wake()
        return paused

    def image_path(self, job_id: str, index: int) -> Path:
        job = self.get(job_id)
        for result in job.results:
            if result.get("index") == index:
                path = Path(result["path"]).resolve()
                if not path.is_relative_to(self.options.output_dir.resolve()) or not path.is_file():
                    raise NotFoundError(f"image {index} of job {job_id} is gone")
                return path
        raise NotFoundError(f"job {job_id} has no image {index}")

    @staticmethod
    def _is_refiner(path: Path) -> bool:
        from impasto.engine.model_folder import is_refiner_folder

        return path.is_dir() and is_refiner_folder(path)

    def _refiner_path(self, refiner_id: str) -> Path:
        """The folder of an installed SDXL refiner; FieldError naming ``refiner`` otherwise."""
        entry = self.catalog.get(refiner_id)
        if entry is None:
            raise FieldError("refiner", f"model {refiner_id!r} is not installed")
        if not self._is_refiner(entry.path):
            raise FieldError("refiner", f"model {refiner_id!r} is not an SDXL refiner")
        return entry.path

    # --- supervisor side ------------------------------------------------------------------

    def claim_next(self, worker_id: str) -> Any:
        return self.store.claim_next(worker_id)

    def run_message(self, job: Any) -> RunJob:
        params = {k: job.request.get(k) for k in _ENGINE_FIELDS if k in job.request}
        for key in ("init_image", "mask_image"):
            value = params.get(key)
            params[key] = str(self.uploads.path_of(value[7:])) if value else None
        model = self.catalog.get(job.model)
        day = time.strftime("%Y-%m-%d", time.localtime(job.created_at))
        return RunJob(
            job_id=job.id,
            model_dir=str(model.path) if model else "",
            model_name=job.model,
            params=params,
            output_dir=str(self.options.output_dir / day),
            preview_every=self.options.preview_every,
            keep_alive=self.options.keep_alive,
            plugins=self.plugins.job_plugins() if self.plugins else {},
            plugin_options=dict(job.request.get("plugins") or {}),
        )

    def on_started(self, job_id: str, message: Started) -> None:
        job = self.store.get(job_id)
        self.bus.publish("started", job_id, {"total_steps": message.total, "attempt": job.attempts})

    def on_progress(self, job_id: str, message: StepProgress) -> None:
        self.store.update_progress(job_id, message.step, message.total)
        data = {
            "step": message.step,
            "total": message.total,
            "progress": message.step / message.total,
        }
        if message.preview:
            self.previews[job_id] = message.preview
        extra = {"preview": preview_data_url(message.preview)} if message.preview else None
        self.bus.publish("progress", job_id, data, extra)

    def on_done(self, job_id: str, message: JobDone) -> None:
        self.store.mark_completed(job_id, message.results)
        self.previews.pop(job_id, None)
        results = [public_result(job_id, r) for r in message.results]
        data: dict[str, Any] = {"results": results, "timings": message.timings}
        if message.warnings:
            data["warnings"] = message.warnings
        self.bus.publish("completed", job_id, data)

    def on_failed(self, job_id: str, error: str) -> None:
        self.store.mark_failed(job_id, error)
        self.previews.pop(job_id, None)
        self.bus.publish("failed", job_id, {"error": error})

    def on_cancelled(self, job_id: str) -> None:
        self.store.mark_cancelled(job_id)
        self.previews.pop(job_id, None)
        self.bus.publish("cancelled", job_id, {})

    def fail_queued(self, reason: str) -> int:
        """Fail every queued job with ``reason`` (no worker can start); returns how many."""
        failed = self.store.fail_queued(reason)
        for job_id in failed:
            self.bus.publish("failed", job_id, {"error": reason})
        return len(failed)

    def on_interrupted(self, job: Any, reason: str) -> None:
        """The worker died (or the daemon is stopping) mid-job: retry it, or give up."""
        self.previews.pop(job.id, None)
        if reason == "daemon stopped":
            self.store.release(job.id)
            return
        if job.attempts + 1 >= self.options.max_attempts:
            error = f"{reason} (tried {job.attempts + 1} times)"
            self.store.mark_failed(job.id, error)
            self.bus.publish("failed", job.id, {"error": error})
            return
        self.store.requeue(job.id, reason)
        self.bus.publish(
            "queued", job.id, {"position": self.store.position(job.id), "retry": reason}
        )


_ENGINE_FIELDS = (
    "prompt",
    "negative_prompt",
    "width",
    "height",
    "steps",
    "cfg_scale",
    "seed",
    "batch_size",
    "sampler",
    "schedule",
    "strength",
    "init_image",
    "mask_image",
    "loras",
    "embeddings",
    "vae_path",
    "clip_skip",
    "refiner_path",
    "refiner_switch",
)


def installed_adapter(models_dir: Path, kind: str, name: str) -> Path:
    """``<models_dir>/<kind>/<name>`` (a ``.safetensors`` file, or a folder for a VAE)."""
    folder = models_dir / kind
    if "/" in name or "\\" in name or name.startswith("."):
        raise FieldError(kind.rstrip("s"), f"{name!r} is not a plain name")
    for candidate in (folder / name, folder / f"{name}.safetensors"):
        if candidate.exists() and candidate.resolve().is_relative_to(folder.resolve()):
            return candidate
    found = sorted(p.stem for p in folder.glob("*")) if folder.is_dir() else []
    label = {"loras": "LoRA", "vae": "VAE"}.get(kind, kind)
    raise FieldError(
        "loras" if kind == "loras" else kind,
        f"{label} {name!r} is not installed in {folder}; installed: {', '.join(found) or 'none'}",
    )


def embeddings_in(models_dir: Path, text: str) -> list[Path]:
    """Installed embeddings whose name (file stem or token) the prompt text uses."""
    from impasto.engine.embeddings import EmbeddingError, load_embedding

    found = []
    for path in sorted((models_dir / "embeddings").glob("*.safetensors")):
        if path.stem in text:
            found.append(path)
            continue
        try:
            if load_embedding(path).token in text:
                found.append(path)
        except EmbeddingError:
            continue
    return found


def public_result(job_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """A stored result as clients see it: a URL instead of a file path."""
    return {
        "index": result["index"],
        "url": f"/api/v1/images/{job_id}/{result['index']}",
        "seed": result["seed"],
        "width": result["width"],
        "height": result["height"],
    }
