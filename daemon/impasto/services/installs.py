"""Install tasks: queued in SQLite, run in the background, reported on the event bus, resumable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from impasto.engine.providers import CPU
from impasto.services.convert import ConversionError, missing_converter
from impasto.services.downloads import DownloadError, InstallCancelled, redact_urls
from impasto.services.errors import ConflictError, NotFoundError
from impasto.services.events import EventBus
from impasto.services.hub import HubError, hub_endpoint, hub_token
from impasto.services.install_checks import (
    InstallOptions,
    validate_install,
)
from impasto.services.known import (
    CatalogRow,
    CatalogSource,
    KnownModel,
    catalog_rows,
)
from impasto.services.models import ModelCatalog
from impasto.services.optimize_stage import warm_cache
from impasto.services.runnable import UnrunnableError
from impasto.services.safety import UnsafeContentError
from impasto.services.sources import describe_source
from impasto.services.stage_job import InstallError, StageJob
from impasto.services.staging import finalize, prepare
from impasto.store.models import InstallRecord, ModelRecord, ModelStore
from impasto.wire import ACTIVE_INSTALL, InstallStatus

log = logging.getLogger("impasto.installs")
T = TypeVar("T")
TICK = 0.5  # seconds between progress events while bytes move
CANCEL_WAIT = 5.0  # seconds a cancelled install's step gets to stop before it is abandoned


class Installer:
    """Starts, tracks, cancels and resumes installs; all calls happen on the event loop."""

    def __init__(
        self, store: ModelStore, catalog: ModelCatalog, bus: EventBus, options: InstallOptions
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.bus = bus
        self.options = options
        self._jobs: dict[str, StageJob] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._stopping = False
        self._abandoned: set[str] = set()
        self._probed = ""  # the provider a probe found while no worker had reported one
        catalog_path = Path(options.catalog_file) if options.catalog_file else None
        self.catalog_source = CatalogSource(catalog_path)

    def machine_provider(self) -> str:
        """The workers' provider, else what a probe found; '' before either (never blocks)."""
        return self.options.provider() or self._probed

    def _probe_provider(self) -> str:
        """Pick the provider as a worker would (opens a one-node session; run in a thread)."""
        from impasto.engine import EngineError
        from impasto.engine.providers import select_providers

        setting = self.options.provider_setting
        try:
            choice = select_providers(
                None if setting in ("", "auto") else setting,
                enable_tensorrt=self.options.enable_tensorrt,
            )
        except EngineError:
            return CPU
        self._probed = choice.name
        return choice.name

    def known(self) -> dict[str, KnownModel]:
        """The catalog of short names (blocking: it may read the file)."""
        return self.catalog_source.entries()

    def catalog_listing(self) -> list[CatalogRow]:
        """The catalog with the build this machine's provider gets from each entry."""
        provider = self.machine_provider()
        return catalog_rows(self.known(), provider, missing_converter())

    async def submit(self, source_text: str, **request: Any) -> InstallRecord:
        """Validate and queue an install; FieldError/ConflictError before anything is written.

        Checking a source touches the disk (a path's type, a file's header), so it runs in a
        thread: a slow disk or a named pipe never stalls the event loop.
        """
        model_id, source, options = await in_daemon_thread(self.validate, source_text, request)
        if self.store.active_install_for(model_id):
            raise ConflictError(f"{model_id!r} is already being installed")
        record = self.store.create_install(model_id, source, options)
        self._publish(record, "queued")
        self._launch(record)
        return record

    def validate(
        self, source_text: str, request: dict[str, Any]
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """The model id, source record and options of an install request (blocking)."""
        return validate_install(self, source_text, request)

    def get(self, install_id: str) -> InstallRecord:
        """One install; NotFoundError if unknown."""
        record = self.store.get_install(install_id)
        if record is None:
            raise NotFoundError(f"no install {install_id!r}")
        return self._live(record)

    def list_installs(self) -> list[InstallRecord]:
        """Running installs first, then recent ones, with live byte counts."""
        return [self._live(r) for r in self.store.list_installs()]

    def dismiss(self, install_id: str) -> None:
        """Forget a finished install (its row in the list); ConflictError while it runs."""
        record = self.get(install_id)
        if record.status in ACTIVE_INSTALL:
            raise ConflictError(f"install {install_id} is {record.status}: cancel it first")
        self.store.delete_finished_install(install_id)
        self._publish(record, "dismissed")

    async def cancel(self, install_id: str) -> InstallRecord:
        """Stop a queued or running install; its staged files are deleted.

        A step that does not notice the cancel within CANCEL_WAIT seconds is abandoned: the
        install ends as cancelled now and whatever the step still does is thrown away.
        """
        record = self.get(install_id)
        if record.status not in ACTIVE_INSTALL:
            raise ConflictError(f"install {install_id} is already {record.status}")
        job = self._jobs.get(install_id)
        task = self._tasks.get(install_id)
        if job is not None:
            job.cancel.set()
        if task is not None:
            await asyncio.wait([task], timeout=CANCEL_WAIT)
        if job is None or (task is not None and not task.done()):
            self._abandoned.add(install_id)
            await self._end(record, "cancelled", None, job)
        return self.get(install_id)

    def resume(self) -> list[str]:
        """Restart the installs a stopped daemon left unfinished; clean orphaned staging."""
        unfinished = self.store.unfinished_installs()
        keep = {r.id for r in unfinished}
        if self.options.staging_dir.is_dir():
            for folder in self.options.staging_dir.iterdir():
                if folder.name not in keep:
                    shutil.rmtree(folder, ignore_errors=True)
        if self.options.models_dir.is_dir():
            for leftover in self.options.models_dir.glob(".*.partial"):
                shutil.rmtree(leftover, ignore_errors=True)
        for record in unfinished:
            self._publish(record, "resumed")
            self._launch(record)
        return sorted(keep)

    async def stop(self) -> None:
        """Pause running installs for the next start (their rows stay running)."""
        self._stopping = True
        for job in self._jobs.values():
            job.cancel.set()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=CANCEL_WAIT)

    def wants_converter(self) -> str | None:
        """Why conversion cannot run here, or None."""
        return missing_converter()

    # --- running --------------------------------------------------------------------------

    def _live(self, record: InstallRecord) -> InstallRecord:
        job = self._jobs.get(record.id)
        if job is not None and record.status == "running":
            record.stage = job.progress.stage
            record.bytes_done, record.bytes_total = job.progress.fetched, job.progress.expected
        return record

    def _launch(self, record: InstallRecord) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(max(1, self.options.concurrency))
        job = StageJob(
            install_id=record.id,
            model_id=record.model_id,
            source=record.source,
            options=record.options,
            staging=self.options.staging_dir / record.id,
            models_dir=self.options.models_dir,
            max_file_size=self.options.max_file_size,
            hub_endpoint=hub_endpoint(self.options.hf_endpoint),
            hub_token=hub_token(self.options.hf_token),
            provider=self.machine_provider(),
            link_roots=self.options.install_roots,
        )
        self._jobs[record.id] = job
        self._tasks[record.id] = asyncio.create_task(self._run(record, job), name=record.id)

    async def _run(self, record: InstallRecord, job: StageJob) -> None:
        assert self._slots is not None
        try:
            await self._steps(record, job)
        finally:
            self._jobs.pop(record.id, None)
            self._tasks.pop(record.id, None)
            self._abandoned.discard(record.id)

    async def _steps(self, record: InstallRecord, job: StageJob) -> None:
        assert self._slots is not None
        try:
            async with self._slots:
                if job.cancel.is_set():
                    raise InstallCancelled("cancelled")
                self.store.update_install(record.id, status="running", stage="starting")
                job.provider = job.provider or await asyncio.to_thread(self._probe_provider)
                ticker = asyncio.create_task(self._tick(record, job))
                try:
                    ready, detected = await in_daemon_thread(prepare, job)
                    if record.id in self._abandoned:
                        raise InstallCancelled("cancelled")
                    job.progress.start("install")
                    installed = await in_daemon_thread(finalize, job, ready, detected)
                    # Its row goes with its folder: GET /models lists it whole (source,
                    # license, ...) from now on, not as a bare folder while the cache warms.
                    self._record_model(record, installed)
                    if self.options.warm_command:
                        job.progress.start("cache")
                        await in_daemon_thread(
                            warm_cache, self.options.warm_command, installed.path
                        )
                finally:
                    ticker.cancel()
                await self._end(record, "completed", None, job)
        except InstallCancelled:
            if self._stopping:
                log.info("install %s paused for the next start", record.id)
                return
            await self._end(record, "cancelled", None, job)
        except (
            InstallError,
            DownloadError,
            HubError,
            UnrunnableError,
            ConversionError,
            UnsafeContentError,
            OSError,
        ) as exc:
            await self._end(record, "failed", redact_urls(str(exc)), job)
        except Exception as exc:  # a bug: fail the install rather than leave it running
            log.exception("install %s crashed", record.id)
            await self._end(record, "failed", redact_urls(f"{type(exc).__name__}: {exc}"), job)

    async def _tick(self, record: InstallRecord, job: StageJob) -> None:
        last: tuple[str, int] | None = None
        while True:
            progress = job.progress
            now = (progress.stage, progress.done)
            if now != last:
                last = now
                self.store.update_install(
                    record.id,
                    stage=progress.stage,
                    bytes_done=progress.fetched,
                    bytes_total=progress.expected,
                )
                self._publish(self._live(self.get(record.id)), "progress")
            await asyncio.sleep(TICK)

    def _record_model(self, record: InstallRecord, installed: Any) -> None:
        options, detected = record.options, installed.detected
        self.store.put(
            ModelRecord(
                id=record.model_id,
                name=options.get("name") or record.model_id,
                type=detected.type,
                path=str(installed.path),
                size=installed.size,
                hash=installed.hash,
                version=str(record.source.get("revision") or ""),
                description=options.get("description", ""),
                # What the files say wins; the catalog's family fills in what they cannot.
                family=(detected.family if detected.family not in ("", "sd1") else "")
                or options.get("family")
                or detected.family,
                precision=detected.precision,
                source=describe_source(record.source),
                license=options.get("license", ""),
            )
        )

    async def _end(
        self,
        record: InstallRecord,
        status: InstallStatus,
        error: str | None,
        job: StageJob | None = None,
    ) -> None:
        if job is not None:  # deleting a big staging folder is slow: not on the event loop
            await asyncio.to_thread(_remove_tree, job.staging)
        current = self.store.get_install(record.id)
        if current is not None and current.status not in ACTIVE_INSTALL:
            return  # ended already (an abandoned step finishing late)
        changes: dict[str, Any] = {"status": status, "error": error, "stage": status}
        if job is not None:
            changes.update(bytes_done=job.progress.fetched, bytes_total=job.progress.expected)
            if job.warning and status == "completed":
                changes["options"] = {**record.options, "warning": job.warning}
        updated = self.store.update_install(record.id, **changes)
        self._publish(updated or record, status)
        if error:
            log.warning("install %s of %s failed: %s", record.id, record.model_id, error)

    def _publish(self, record: InstallRecord, event: str) -> None:
        self.bus.publish("install", None, install_json(record, event=event))


async def in_daemon_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a blocking install step in a daemon thread and await its result.

    Unlike the default executor, a daemon thread stuck in a read (a stalled server, a hung
    network mount) neither holds up the daemon's exit on SIGTERM nor a later install.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = function(*args)
        except BaseException as exc:  # handed to the awaiting task
            error = exc
            outcome = lambda: future.set_exception(error)  # noqa: E731
        else:
            outcome = lambda: future.set_result(result)  # noqa: E731
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=run, name=f"install-{function.__name__}", daemon=True).start()
    return await future


def _remove_tree(folder: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(folder)


def install_json(record: InstallRecord, event: str | None = None) -> dict[str, Any]:
    """An install as the API and the event stream show it."""
    body: dict[str, Any] = {
        "id": record.id,
        "model_id": record.model_id,
        "source": describe_source(record.source),
        "status": record.status,
        "stage": record.stage,
        "bytes_done": record.bytes_done,
        "bytes_total": record.bytes_total,
        "error": record.error,
        "note": record.options.get("note", ""),
        "warning": record.options.get("warning", ""),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "finished_at": record.finished_at,
    }
    if event:
        body["event"] = event
    return body
