"""Generation jobs: submit, follow, cancel, prioritise, delete (the API side of the life cycle)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from impasto.plugins import PluginError, PluginRejected
from impasto.services.errors import ConflictError, FieldError, NotFoundError, QueueFullError
from impasto.services.events import EventBus
from impasto.services.images import UPLOAD_REF, image_gone
from impasto.services.plan import Resolver
from impasto.services.runner import JobRunner
from impasto.store.cursors import InvalidCursorError
from impasto.wire import (
    IMAGE_FIELDS,
    TERMINAL_STATUSES,
    GenerateRequest,
    ResolvedPlan,
    convert_allowing_empty_prompt,
    decode_error,
)
from impasto.worker.supervisor import Supervisor

log = logging.getLogger("impasto.jobs")

CLEAR_BATCH = 100  # cancelled events :meth:`JobService.clear` publishes between yields
# The most seconds a clear waits, in all, for the event streams to take in its events.
CLEAR_CATCH_UP = 2.0


@dataclass(frozen=True)
class JobOptions:
    """The knobs of the job service, taken from settings."""

    output_dir: Path
    max_queue: int


class JobService:
    """The API side of the job life cycle; ``JobRunner`` is the side the supervisor calls."""

    def __init__(
        self,
        store: Any,
        bus: EventBus,
        resolver: Resolver,
        runner: JobRunner,
        supervisor: Supervisor | None,
        options: JobOptions,
        plugins: Any = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.resolver = resolver
        self.runner = runner
        self.supervisor = supervisor
        self.options = options
        # The plugin host (impasto.plugins.manager.PluginHost); None runs no plugins.
        self.plugins = plugins
        runner.paused = store.queue_state.paused()  # paused before a restart: still paused

    @property
    def paused(self) -> bool:
        return self.runner.paused

    @property
    def previews(self) -> dict[str, bytes]:
        """The latest preview JPEG of each running job."""
        return self.runner.previews

    # --- API side -------------------------------------------------------------------------

    async def submit_async(
        self, request: GenerateRequest, idempotency_key: str | None = None
    ) -> tuple[Any, bool]:
        """Run the plugins' preprocessors, resolve the plan, store both, wake a worker; with
        an Idempotency-Key already used, the job it made and False. The blocking part
        (plugins, decoding init images, reading model folders) runs in a thread, so a big
        upload never stalls the event loop."""
        earlier, digest = await asyncio.to_thread(self._earlier, request, idempotency_key)
        if earlier is not None:
            return earlier, False
        request, plan, uploads = await asyncio.to_thread(self._prepare_storing, request)
        created = False
        try:
            job, created = self._enqueue(request, plan, idempotency_key, digest)
            if not created and idempotency_key is not None:
                # Another request with this key was queued between the lookup and the insert:
                # its job if it was this request, else the 422.
                self._replayed(idempotency_key, digest)
        finally:
            if not created:  # refused, or a replay: the pictures this request stored go
                await asyncio.to_thread(self.resolver.uploads.discard, uploads)
        return job, created

    def _earlier(self, request: GenerateRequest, key: str | None) -> tuple[Any, str | None]:
        """The job an earlier request with this Idempotency-Key made (None if none), and the
        digest of this request to store with a new one (None without a key; blocking: a
        digest of the body, one SQL lookup)."""
        if key is None:
            return None, None
        digest = hashlib.sha256(msgspec.json.encode(request)).hexdigest()
        return self._replayed(key, digest), digest

    def _replayed(self, key: str, digest: str | None) -> Any:
        """The job an earlier request with this Idempotency-Key made (None if none). A key
        that came with another request (its ``digest`` differs) is a 422 naming it, as the
        IETF draft on the header says, not that request's job (blocking: one SQL lookup)."""
        found = self.store.by_idempotency_key(key)
        if found is None:
            return None
        job, stored = found
        if stored is not None and stored != digest:
            message = f"was sent with another request (job {job.id}): use a new key for it"
            raise FieldError("Idempotency-Key", message)
        return job

    def prepare(self, request: GenerateRequest) -> tuple[GenerateRequest, ResolvedPlan]:
        """The request after the plugins, and the plan it resolves to (blocking)."""
        request = self._preprocess(request)
        return request, self.resolver.resolve(request)

    def _prepare_storing(
        self, request: GenerateRequest
    ) -> tuple[GenerateRequest, ResolvedPlan, list[str]]:
        """:meth:`prepare`, and the uploads it stored (a job not queued after all removes
        them; blocking)."""
        with self.resolver.uploads.new_uploads() as stored:
            request, plan = self.prepare(request)
        return request, plan, stored

    def check_room(self, count: int) -> None:
        """QueueFullError unless the queue has room for ``count`` more jobs: a request that
        makes many (an A1111 script) is refused whole, before it queues any (blocking)."""
        room = self.options.max_queue - self.store.count_queued()
        if count > room:
            raise QueueFullError(
                f"this request makes {count} jobs and the queue has room for {max(room, 0)} "
                f"(max_queue {self.options.max_queue}); retry later or with fewer",
                10,
            )

    def _enqueue(
        self,
        request: GenerateRequest,
        plan: ResolvedPlan,
        idempotency_key: str | None,
        digest: str | None = None,
    ) -> tuple[Any, bool]:
        # On the event loop, so the count and the insert are one step (the limit holds under
        # concurrent submits) and the queued event comes before any started event; both
        # queries read at most max_queue index entries.
        if self.store.count_queued() >= self.options.max_queue:
            raise QueueFullError(
                f"the queue holds {self.options.max_queue} jobs, its limit (max_queue); "
                "retry later",
                10,
            )
        # Images sent inline (data: URLs) are stored once, as the plan's uploads.
        images = {name: getattr(plan, name) for name in IMAGE_FIELDS}
        stored = msgspec.structs.replace(request, **images)
        job, created = self.store.create(
            msgspec.to_builtins(stored),
            model=plan.model,
            prompt=plan.prompt,
            priority=plan.priority,
            idempotency_key=idempotency_key,
            total_steps=plan.steps,
            plan=msgspec.to_builtins(plan),
            request_hash=digest,
        )
        if created:
            self.bus.publish("queued", job.id, {"position": self.store.position(job.id)})
            if self.supervisor:
                self.supervisor.wake()
        return job, created

    def plan(self, request: GenerateRequest) -> ResolvedPlan:
        """What ``request`` would run, without queueing it: the images it stores on the way
        are removed again (the plan names them as a job's plan would)."""
        with self.resolver.uploads.new_uploads() as stored:
            plan = self.resolver.resolve(self._preprocess(request))
        self.resolver.uploads.discard(stored)
        return plan

    def _preprocess(self, request: GenerateRequest) -> GenerateRequest:
        if self.plugins is None:
            if request.plugins:  # options no plugin would read
                raise FieldError("plugins", "plugins are not loaded in this daemon")
            return request

        def checked(result: dict[str, Any]) -> GenerateRequest:
            # What a plugin returns passes the schema's checks again, strictly, as a client's
            # body does (a prompt of 5 is refused, not made "5"); the compatible APIs' empty
            # prompt (checked with a stand-in by them) stays empty.
            if isinstance(result.get("prompt"), str):
                return convert_allowing_empty_prompt(result, GenerateRequest)
            return msgspec.convert(result, GenerateRequest)

        def refused(result: dict[str, Any]) -> tuple[str, str] | None:
            try:
                checked(result)
            except msgspec.ValidationError as exc:
                return decode_error(str(exc), schema=GenerateRequest)
            return None

        try:
            result = self.plugins.preprocess_request(msgspec.to_builtins(request), refused)
            return checked(result)
        except PluginRejected as exc:
            raise FieldError(exc.field, exc.message) from None
        except PluginError as exc:
            raise FieldError("plugins", exc.message) from None
        except msgspec.ValidationError as exc:  # no plugin changed it: the request as it came
            raise FieldError(*decode_error(str(exc), schema=GenerateRequest)) from None

    def get(self, job_id: str) -> Any:
        job = self.store.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def position(self, job_id: str) -> int | None:
        """The job's place in the queue (blocking: it counts the jobs ahead)."""
        return self.store.position(job_id)

    async def position_async(self, job_id: str) -> int | None:
        """:meth:`position` in a thread: its count grows with the queue."""
        return await asyncio.to_thread(self.store.position, job_id)

    async def cancel(self, job_id: str) -> Any:
        job = self.get(job_id)
        if job.status in TERMINAL_STATUSES:
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

    async def clear(self, *, running: bool = False) -> list[str]:
        """Cancel every queued job, and with ``running`` the running ones as well; returns the
        ids cancelled, queued ones in run order first."""
        # One UPDATE that grows with the queue: in a thread. The queued jobs go first, so none
        # of them starts in a slot that cancelling a running job frees.
        cancelled = await asyncio.to_thread(self.store.cancel_all_queued)
        until = time.monotonic() + CLEAR_CATCH_UP
        for done, job_id in enumerate(cancelled, 1):
            self.bus.publish("cancelled", job_id, {})
            if done % CLEAR_BATCH == 0:
                # Thousands of events: let other requests in between, and let the streams
                # send them, so a client that reads is not ended as fallen behind.
                await self.bus.catch_up(until)
        if running:
            for job in await asyncio.to_thread(self.list_processing):
                try:
                    await self.cancel(job.id)
                except ConflictError:
                    continue  # it finished meanwhile
                cancelled.append(job.id)
        return cancelled

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
        self._remove(job_id)
        self.bus.publish("deleted", job_id, {})

    async def delete_async(self, job_id: str) -> None:
        """:meth:`delete` with the file removals in a thread; the event is published here."""
        await asyncio.to_thread(self._remove, job_id)
        self.bus.publish("deleted", job_id, {})

    def _remove(self, job_id: str) -> None:
        """Remove a finished job's images and record (blocking)."""
        job = self.get(job_id)
        if job.status not in TERMINAL_STATUSES:
            raise ConflictError(f"job {job_id} is {job.status}; cancel it before deleting it")
        for result in job.results:
            path = Path(result.get("path", ""))
            if path.is_file() and path.resolve().is_relative_to(self.options.output_dir.resolve()):
                path.unlink()
        self.store.delete(job_id)

    async def prune_history(self, keep: int) -> int:
        """Remove the records of all but the newest ``keep`` finished jobs (their images
        stay), each with its ``deleted`` event as a DELETE publishes; returns how many."""
        removed = await asyncio.to_thread(self.store.prune_history, keep)
        until = time.monotonic() + CLEAR_CATCH_UP
        for done, job_id in enumerate(removed, 1):
            self.bus.publish("deleted", job_id, {})
            if done % CLEAR_BATCH == 0:
                await self.bus.catch_up(until)
        return len(removed)

    def uploads_in_use(self) -> set[str]:
        """The ids of the uploads a queued or running job names, in its request or its plan
        (blocking SQL that grows with the queue: call it in a thread)."""
        used: set[str] = set()
        for job in self.store.list_active():
            text = json.dumps([job.request, job.plan])
            used.update(UPLOAD_REF.findall(text))
        return used

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
        """Pause (running jobs finish, queued ones wait) or resume the queue, across restarts."""
        self.store.queue_state.set_paused(paused)
        self.runner.paused = paused
        self.bus.publish("queue", None, {"paused": paused})
        if not paused and self.supervisor:
            self.supervisor.wake()
        return paused

    def image_path(self, job_id: str, index: int) -> Path:
        job = self.get(job_id)
        for result in job.results:
            if result.get("index") == index:
                path = Path(result["path"]).resolve()
                if not path.is_relative_to(self.options.output_dir.resolve()):
                    raise NotFoundError(
                        f"image {index} of job {job_id} is outside the output folder "
                        "(output_dir changed since it was made); it is not served"
                    )
                if not path.is_file():
                    raise NotFoundError(image_gone(job_id, index, path.name))
                return path
        raise NotFoundError(f"job {job_id} has no image {index}")
