"""Helpers the AUTOMATIC1111 and OpenAI compatible APIs share: wait for jobs, interrupt, state."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import re
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from impasto.formats.png import read_png_metadata
from impasto.services.container import Services
from impasto.services.errors import NotFoundError, ServiceError
from impasto.services.images import UPLOAD_REF
from impasto.wire import IMAGE_FIELDS, TERMINAL_STATUSES, GenerateRequest

HEARTBEAT = 2.0
RNG_SOURCES = {"GPU": "pcg64", "CPU": "cpu", "NV": "nv"}
"""A1111's randn_source choices and the noise source each runs on: torch's CPU and CUDA
generators for CPU and NV; GPU, whose noise depends on the card, on Impasto's own."""
_CHECKPOINT_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]{6,64}\]$")
_EXTENSIONS = (".safetensors", ".ckpt", ".onnx", ".pt", ".bin")


@dataclass
class CompatState:
    """What AUTOMATIC1111 keeps globally: the loaded checkpoint, options, the running task."""

    checkpoint: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # job id -> the ids of every job queued by the same compat request (n_iter), in order.
    tasks: dict[str, list[str]] = field(default_factory=dict)
    # job id -> when its task was queued (A1111's State.time_start).
    started: dict[str, float] = field(default_factory=dict)
    # A1111's State: the last task's start ("0" before any; kept when idle) and its flags.
    job_timestamp: str = "0"
    skipped: bool = False
    interrupted: bool = False
    # When skipped or interrupted was set, and the task then running (its job ids).
    flagged: tuple[float, list[str]] | None = None

    def track(self, job_ids: list[str]) -> None:
        """A new task (one compat request) is queued."""
        now = time.time()
        for job_id in job_ids:
            self.tasks[job_id] = job_ids
            self.started[job_id] = now
        self.stamp(now)

    def flag(self, *, interrupted: bool, running: list[str]) -> None:
        """/interrupt or /skip while the task ``running`` runs: its flag is up until the next
        task begins."""
        if interrupted:
            self.interrupted = True
        else:
            self.skipped = True
        self.flagged = (time.time(), running)

    def saw_start(self, last_started: tuple[str, float] | None) -> None:
        """Lower the flags once a job of another task than the flagged one has started since
        they went up: A1111's State.begin() resets them when the next task begins (a skip
        moves on within its own task, still flagged)."""
        if self.flagged is None or last_started is None:
            return
        job_id, at = last_started
        flagged_at, task = self.flagged
        if at >= flagged_at and job_id not in task:
            self.skipped = self.interrupted = False
            self.flagged = None

    def stamp(self, started: float) -> None:
        """The running task's start as A1111's ``job_timestamp``."""
        self.job_timestamp = time.strftime("%Y%m%d%H%M%S", time.localtime(started))

    def forget(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self.tasks.pop(job_id, None)
            self.started.pop(job_id, None)

    def task_list(self) -> list[list[str]]:
        """Each tracked task once."""
        return list({id(ids): ids for ids in self.tasks.values()}.values())


def compat_state(services: Services) -> CompatState:
    """The one CompatState of this daemon, created on first use."""
    state = services.extra.get("compat")
    if not isinstance(state, CompatState):
        state = services.extra["compat"] = CompatState()
    return state


def resolve_checkpoint(services: Services, name: str) -> str | None:
    """An installed model id for an A1111 title ("x.safetensors [hash]"), path or id."""
    cleaned = _CHECKPOINT_SUFFIX.sub("", name.strip())
    cleaned = cleaned.replace("\\", "/").rsplit("/", 1)[-1]
    for ext in _EXTENSIONS:
        if cleaned.lower().endswith(ext):
            cleaned = cleaned[: -len(ext)]
    for candidate in (name.strip(), cleaned):
        model = services.catalog.get(candidate)
        if model is not None:
            return model.id
    lowered = cleaned.lower()
    for model in services.catalog.list():
        if model.id.lower() == lowered or model.name.lower() == lowered:
            return model.id
    # By hash, as A1111's checkpoint aliases: the sha256, or its first 10 digits.
    wanted = name.strip().lower()
    if len(wanted) in (10, 64) and all(c in "0123456789abcdef" for c in wanted):
        for model in services.catalog.list():
            if model.hash and model.hash.lower()[: len(wanted)] == wanted:
                return model.id
    return None


def current_checkpoint(services: Services) -> str:
    """The model compat requests use when they name none."""
    return compat_state(services).checkpoint or services.settings.default_model


async def submit_all(services: Services, requests: list[GenerateRequest]) -> list[str]:
    """Queue one Impasto job per request (never bypassing the queue); track them as one task.

    All or nothing: more jobs than the queue has room for are refused before any is queued,
    and if one is refused still (the queue filled meanwhile), the ones already queued are
    cancelled and deleted, leaving nothing in the history.
    """
    job_ids: list[str] = []
    try:
        if len(requests) > 1:
            await asyncio.to_thread(services.jobs.check_room, len(requests))
        for request in requests:
            job_ids.append((await services.jobs.submit_async(request))[0].id)
    except ServiceError:
        for job_id in job_ids:
            await services.jobs.cancel(job_id)
            with contextlib.suppress(ServiceError):  # one a worker still holds stays
                await services.jobs.delete_async(job_id)
        await asyncio.to_thread(discard_pictures, services, requests)
        raise
    state = compat_state(services)
    # A task whose request never reached its own forget (a streamed answer nobody read) is
    # forgotten here once its jobs are over. One lookup per tracked job: SQL that grows with
    # the tasks in flight, so in a thread.
    over = await asyncio.to_thread(_finished_tasks, services, state.task_list())
    for task in over:
        state.forget(task)
    state.track(job_ids)
    return job_ids


def discard_pictures(
    services: Services, requests: list[GenerateRequest], more: Iterable[str | None] = ()
) -> None:
    """Remove the uploads ``requests`` (and ``more``) name: a compat request's pictures are
    stored for its own jobs, so none stays when it is refused (blocking)."""
    named = [str(getattr(request, name) or "") for request in requests for name in IMAGE_FIELDS]
    services.uploads.discard(UPLOAD_REF.findall(" ".join([*named, *(m or "" for m in more)])))


def _finished_tasks(services: Services, tasks: list[list[str]]) -> list[list[str]]:
    """The tasks whose jobs are all over (or gone): nothing will ask for them again."""

    def over(job_id: str) -> bool:
        try:
            return services.jobs.get(job_id).status in TERMINAL_STATUSES
        except NotFoundError:
            return True

    return [task for task in tasks if all(over(job_id) for job_id in task)]


async def await_job(services: Services, job_id: str) -> Any:
    """Follow the event stream until the job is completed, failed or cancelled; return it."""
    job = services.jobs.get(job_id)
    if job.status in TERMINAL_STATUSES:
        return job
    # Replaying from 0 for this one job closes the gap between submit and subscribe.
    async for _ in services.bus.stream(0, job_id, heartbeat=HEARTBEAT):
        job = services.jobs.get(job_id)
        if job.status in TERMINAL_STATUSES:
            return job
    # The stream only ends when the bus shuts down or the subscriber overflowed: poll instead.
    while job.status not in TERMINAL_STATUSES:
        await asyncio.sleep(HEARTBEAT / 4)
        job = services.jobs.get(job_id)
    return job


async def spread_previews(
    services: Services, job_id: str, count: int
) -> AsyncIterator[bytes | None]:
    """Up to ``count`` of a running job's previews (JPEG), spread over its steps: the first one
    at or past each of ``count + 1`` equal parts of the steps. Yields None after HEARTBEAT idle
    seconds (for keep-alives) and ends when the job has finished, however it finished.

    Fewer come when the job has fewer previews (the daemon's ``preview_every``), as OpenAI's
    ``partial_images`` may also give fewer.
    """
    if services.jobs.get(job_id).status in TERMINAL_STATUSES:
        return
    sent = 0
    async for event in services.bus.stream(0, job_id, heartbeat=HEARTBEAT):
        if event is None:
            yield None
        elif event.type in TERMINAL_STATUSES:
            return
        elif event.type == "progress" and sent < count:
            preview = event.ephemeral.get("preview")
            step, total = event.data.get("step", 0), event.data.get("total", 0)
            if preview and step * (count + 1) >= (sent + 1) * total:
                sent += 1
                yield base64.b64decode(preview.partition(",")[2])
    await await_job(services, job_id)  # the bus closed early: wait by polling


async def await_all(services: Services, job_ids: list[str]) -> list[Any]:
    """Wait for every job of a task in order; forget the task afterwards."""
    try:
        return [await await_job(services, job_id) for job_id in job_ids]
    finally:
        compat_state(services).forget(job_ids)


async def cancel_unfinished(services: Services, job_ids: list[str]) -> None:
    """Cancel the jobs of a request whose client went away; those over meanwhile stay."""
    for job_id in job_ids:
        with contextlib.suppress(ServiceError):  # already completed, failed or cancelled
            await services.jobs.cancel(job_id)


def running_jobs(services: Services) -> list[Any]:
    """Processing jobs, oldest start first."""
    return services.jobs.list_processing()


async def interrupt(services: Services, *, whole_task: bool) -> list[str]:
    """Cancel what runs now; with ``whole_task`` also the rest of its compat request (n_iter)."""
    state = compat_state(services)
    running = running_jobs(services)
    task = [each for job in running for each in state.tasks.get(job.id, [job.id])]
    state.flag(interrupted=whole_task, running=task)
    cancelled: list[str] = []
    for job in running:
        targets = [job.id]
        if whole_task:
            targets += [j for j in state.tasks.get(job.id, []) if j != job.id]
        for job_id in targets:
            if services.jobs.get(job_id).status in TERMINAL_STATUSES:
                continue
            await services.jobs.cancel(job_id)
            cancelled.append(job_id)
    return cancelled


@dataclass(frozen=True)
class ProgressSnapshot:
    """Where the running job stands, as AUTOMATIC1111's /progress reports it."""

    job_id: str | None
    job_no: int  # the running job's place in its task (A1111's n_iter index)
    job_count: int  # jobs in the running task; 0 when idle
    step: int
    total: int
    started_at: float | None  # when the task began
    preview: bytes | None

    @property
    def fraction(self) -> float:
        """The task's progress, as A1111 counts it: finished iterations plus the running one."""
        if not self.job_count:
            return 0.0
        within = self.step / self.total if self.total else 0.0
        return min(1.0, (self.job_no + within) / self.job_count)

    def eta(self) -> float:
        """Seconds left, extrapolated from the time spent so far (0 before the first step)."""
        if not self.started_at or not self.fraction:
            return 0.0
        spent = time.time() - self.started_at
        return max(0.0, spent / self.fraction - spent)


def progress(services: Services) -> ProgressSnapshot:
    """The first running job's step and latest preview, placed in its task (or alone); the
    skipped and interrupted flags lowered once another task has begun."""
    compat_state(services).saw_start(services.jobs.runner.last_started)
    running = services.jobs.list_processing()
    if not running:
        return ProgressSnapshot(None, 0, 0, 0, 0, None, None)
    job = running[0]
    state = compat_state(services)
    # A job from another API is a task of its own, as far as A1111 clients can see.
    task = state.tasks.get(job.id, [job.id])
    started = state.started.get(job.id, job.started_at)
    if started:
        state.stamp(started)
    preview = services.jobs.previews.get(job.id)
    return ProgressSnapshot(
        job.id, task.index(job.id), len(task), job.current_step, job.total_steps, started, preview
    )


def png_base64(jpeg_or_png: bytes) -> str:
    """Image bytes re-encoded as a base64 PNG, the format A1111 clients expect."""
    with Image.open(io.BytesIO(jpeg_or_png)) as image:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass(frozen=True)
class ResultImage:
    """One generated image: its PNG bytes (parameters embedded) and record."""

    job_id: str
    index: int
    seed: int
    width: int
    height: int
    png: bytes
    infotext: str

    @property
    def base64(self) -> str:
        return base64.b64encode(self.png).decode("ascii")


def result_images(services: Services, jobs: list[Any]) -> list[ResultImage]:
    """Every image of the completed jobs, in job and index order."""
    images: list[ResultImage] = []
    for job in jobs:
        if job.status != "completed":
            continue
        for result in sorted(job.results, key=lambda r: r["index"]):
            path = services.jobs.image_path(job.id, result["index"])
            png = path.read_bytes()
            infotext = read_png_metadata(png)["parameters"] or ""
            images.append(
                ResultImage(
                    job.id,
                    result["index"],
                    result["seed"],
                    result["width"],
                    result["height"],
                    png,
                    infotext,
                )
            )
    return images
