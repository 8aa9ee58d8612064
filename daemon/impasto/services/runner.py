"""The worker-facing side of the job life cycle: claim, build the worker message, record outcomes.

The supervisor calls these; ``JobService`` (the API side) shares the store, the bus and the
``paused`` flag through this object, so the two are wired by their constructors.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from impasto.services.events import EventBus
from impasto.services.models import ModelCatalog
from impasto.wire import ResolvedPlan
from impasto.worker.protocol import JobDone, RunJob, Started, StepProgress
from impasto.worker.supervisor import preview_data_url

# Why a job left processing by a daemon that was killed (not stopped) was interrupted.
ORPHANED = "the daemon stopped during this job"


@dataclass(frozen=True)
class RunnerOptions:
    """Where jobs write and read files, and the worker knobs taken from settings."""

    output_dir: Path
    uploads_dir: Path
    max_attempts: int
    preview_every: int
    keep_alive: float
    # Folders whose local paths a job's error must not carry (records and answers get
    # shared), each with the label that replaces it: (models_dir, "<models>"), ...
    private_folders: tuple[tuple[Path, str], ...] = ()


def job_plan(job: Any) -> ResolvedPlan:
    """A stored job's plan; jobs queued before plans existed carry every field in the request."""
    return msgspec.convert(job.plan or job.request, ResolvedPlan)


class JobRunner:
    """Turns claimed jobs into ``RunJob`` messages and worker reports into job states."""

    def __init__(
        self,
        store: Any,
        bus: EventBus,
        catalog: ModelCatalog,
        options: RunnerOptions,
        plugins: Any = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.catalog = catalog
        self.options = options
        # The plugin host (impasto.plugins.manager.PluginHost); None runs no plugins.
        self.plugins = plugins
        self.paused = False
        # The latest preview JPEG of each running job, for A1111's /progress current_image.
        self.previews: dict[str, bytes] = {}
        # The job that started last and when: where A1111's /progress sees a new task begin.
        self.last_started: tuple[str, float] | None = None

    def claim_next(self, worker_id: str) -> Any:
        return self.store.claim_next(worker_id)

    def run_message(self, job: Any) -> RunJob:
        """The typed message a worker runs: the plan, plus the folders to look names up in."""
        plan = job_plan(job)
        day = time.strftime("%Y-%m-%d", time.localtime(job.created_at))
        return RunJob(
            job_id=job.id,
            plan=plan,
            models_dir=str(self.catalog.models_dir),
            uploads_dir=str(self.options.uploads_dir),
            output_dir=str(self.options.output_dir / day),
            preview_every=self.options.preview_every,
            keep_alive=self.options.keep_alive,
            plugins=self.plugins.job_plugins() if self.plugins else {},
            plugin_options=dict(plan.plugins),
        )

    def on_started(self, job_id: str, message: Started) -> None:
        self.last_started = (job_id, time.time())
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
        stored = [{**r, "image_path": self._image_path(r["path"])} for r in message.results]
        warnings = [self.public_error(w) for w in message.warnings]
        self.store.mark_completed(job_id, stored, warnings)
        self.previews.pop(job_id, None)
        results = [public_result(job_id, r) for r in stored]
        data: dict[str, Any] = {"results": results, "timings": message.timings}
        if warnings:
            data["warnings"] = warnings
        self.bus.publish("completed", job_id, data)

    def _image_path(self, path: str) -> str:
        """Where an output lies, relative to the output folder: no local path reaches a
        client (records and responses are shared; docs/api.md)."""
        try:
            return Path(path).relative_to(self.options.output_dir).as_posix()
        except ValueError:
            return Path(path).name

    def public_error(self, error: str) -> str:
        """``error`` with each private folder's path replaced by its label (the deepest
        folder first, so ``<models>/loras/x`` rather than ``<data>/models/loras/x``)."""
        spellings = [
            (spelling, label)
            for folder, label in self.options.private_folders
            for spelling in {str(folder), os.path.realpath(folder)}
        ]
        for spelling, label in sorted(spellings, key=lambda pair: -len(pair[0])):
            error = error.replace(spelling, label)
        return error

    def on_failed(self, job_id: str, error: str) -> None:
        error = self.public_error(error)
        if self.plugins is not None:  # a plugin's hook failed it: GET /plugins counts that
            self.plugins.note_job_error(error)
        self.store.mark_failed(job_id, error)
        self.previews.pop(job_id, None)
        self.bus.publish("failed", job_id, {"error": error})

    def on_cancelled(self, job_id: str) -> None:
        self.store.mark_cancelled(job_id)
        self.previews.pop(job_id, None)
        self.bus.publish("cancelled", job_id, {})

    def on_done_after_cancel(self, job_id: str, message: JobDone) -> None:
        """The worker finished the job after its cancel was answered: it ends cancelled, as
        the cancel said, and the images it wrote go (a cancelled job keeps none)."""
        output_dir = self.options.output_dir.resolve()
        for result in message.results:
            path = Path(result["path"])
            if path.resolve().is_relative_to(output_dir):
                path.unlink(missing_ok=True)
        self.on_cancelled(job_id)

    def fail_queued(self, reason: str) -> int:
        """Fail every queued job with ``reason`` (no worker can start); returns how many."""
        reason = self.public_error(reason)
        failed = self.store.fail_queued(reason)
        for job_id in failed:
            self.bus.publish("failed", job_id, {"error": reason})
        return len(failed)

    def recover_orphans(self) -> None:
        """Settle the jobs a killed daemon left processing (at start, before any worker runs):
        each such try counts, as a dead worker's does, so a job that takes the daemon down
        every time fails after ``max_attempts`` instead of looping for ever."""
        for job in self.store.list_processing():
            self.on_interrupted(job, ORPHANED)

    def on_interrupted(self, job: Any, reason: str, *, retry: bool = True) -> None:
        """The worker died (or the daemon is stopping) mid-job: retry it, or give up.

        ``attempts`` counts the tries a dead worker cut short, the last one included, so a job
        that fails after ``max_attempts`` shows as many as its error says it had. A stop of the
        daemon is no try (the job goes back as it was); ``retry=False`` fails it at once (out of
        memory: another try would meet the same wall).
        """
        self.previews.pop(job.id, None)
        if reason == "daemon stopped":
            self.store.release(job.id)
            return
        reason = self.public_error(reason)
        tries = job.attempts + 1
        # A job cancelled meanwhile (its cancel found no worker on it) stays as it is, and
        # its clients hear no event for a change that did not happen.
        if retry and tries < self.options.max_attempts:
            if self.store.requeue(job.id, reason).status == "queued":
                self.bus.publish(
                    "queued", job.id, {"position": self.store.position(job.id), "retry": reason}
                )
            return
        times = "once" if tries == 1 else f"{tries} times"
        error = f"{reason} (tried {times})" if retry else reason
        if self.store.fail_interrupted(job.id, error) is not None:
            self.bus.publish("failed", job.id, {"error": error})


def public_result(job_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """A stored result as clients see it: a URL to fetch it, its file relative to the
    output folder (never the local path), its PNG text."""
    return {
        "index": result["index"],
        "url": f"/api/v1/images/{job_id}/{result['index']}",
        "seed": result["seed"],
        "width": result["width"],
        "height": result["height"],
        # Results stored before these fields existed have neither.
        "image_path": result.get("image_path", ""),
        "metadata": result.get("metadata", {}),
    }
