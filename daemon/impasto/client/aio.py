"""The asyncio client: ``AsyncClient`` sends the same calls as ``Client``, awaiting them."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from impasto.client import core, stream
from impasto.client import models as models_api
from impasto.client.connection import CONNECT_ERRORS, Connection, Locator, client_options
from impasto.client.core import ImageSource
from impasto.client.discovery import Endpoint
from impasto.client.errors import ApiError, DaemonNotRunning, StreamError
from impasto.client.plugins import PluginInfo, list_plugins, set_plugin_enabled
from impasto.client.transport import async_transport
from impasto.client.types import (
    Event,
    Health,
    HistoryPage,
    JobStatus,
    ModelInfo,
    QueueState,
    SamplerInfo,
    Submitted,
    SystemInfo,
    UpscalerEntry,
)

T = TypeVar("T")


class AsyncClient:
    """Asyncio client of the daemon; finds it through the discovery file unless told where.

    When it found the daemon through the discovery file, a daemon restarted on another port or
    with another token is found again by itself."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        socket: str | os.PathLike[str] | None = None,
        token: str | None = None,
        runtime_dir: str | os.PathLike[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._transport = transport
        self._timeout_s = timeout
        locator = Locator(base_url, socket, token, runtime_dir, transport is not None)
        self._timeout: httpx.Timeout = client_options(locator.endpoint, timeout)["timeout"]
        self._conn = Connection(locator, self._connect)

    @property
    def endpoint(self) -> Endpoint:
        """Where and how the daemon is reached now."""
        return self._conn.locator.endpoint

    @property
    def where(self) -> str:
        """The socket or URL this client talks to, for messages."""
        return self.endpoint.where

    def _connect(self, endpoint: Endpoint) -> httpx.AsyncClient:
        transport = self._transport or async_transport(endpoint)
        return httpx.AsyncClient(transport=transport, **client_options(endpoint, self._timeout_s))

    async def aclose(self) -> None:
        """Close the connections."""
        for http in self._conn.take_all():
            await http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _send(
        self, build: Callable[[httpx.AsyncClient], httpx.Request], stream: bool = False
    ) -> httpx.Response:
        """Send the request ``build`` makes; once more to a daemon that restarted elsewhere
        (nothing was sent, or the old token was refused). A failed connect is DaemonNotRunning;
        other transport errors are the caller's."""
        for last in (False, True):
            http = self._conn.http
            try:
                response = await http.send(build(http), stream=stream)
            except CONNECT_ERRORS as exc:
                if not last and self._conn.follow(http):
                    continue
                raise core.transport_error(exc, self.where) from exc
            if response.status_code == 401 and not last and self._conn.follow(http):
                await response.aclose()
                continue
            return response
        raise AssertionError("unreachable")

    async def _call(self, call: core.Call[T]) -> T:
        try:
            response = await self._send(call.request)
        except httpx.TransportError as exc:
            raise core.transport_error(exc, self.where) from exc
        core.raise_for_status(response)
        return call.parse(response)

    async def health(self) -> Health:
        """Whether the daemon answers, and its version."""
        return await self._call(core.health())

    async def system(self) -> SystemInfo:
        """Version, execution provider, hardware, queue counts, loaded models, workers."""
        return await self._call(core.system())

    async def models(self) -> list[ModelInfo]:
        """The installed models."""
        return await self._call(core.models())

    async def model_details(self, types: Sequence[str] = ()) -> list[models_api.ModelDetail]:
        """Every installed model (of ``types`` when given) with its source, hash and license."""
        return await self._call(models_api.model_list(types))

    async def model(self, model_id: str) -> models_api.ModelDetail:
        """One installed model with its source, hash and license."""
        return await self._call(models_api.model(model_id))

    async def model_catalog(self) -> list[models_api.CatalogEntry]:
        """The model catalog with the build this machine would get from each entry."""
        return await self._call(models_api.catalog())

    async def install_model(self, source: str, **options: Any) -> models_api.InstallStatus:
        """Start installing a catalog name, hub repo id, URL or path; returns the task."""
        return await self._call(models_api.install(source, **options))

    async def install_status(self, install_id: str) -> models_api.InstallStatus:
        """One install task and its progress."""
        return await self._call(models_api.install_status(install_id))

    async def installs(self) -> list[models_api.InstallStatus]:
        """Running and recent installs."""
        return await self._call(models_api.installs())

    async def cancel_install(self, install_id: str) -> models_api.InstallStatus:
        """Cancel a running install."""
        return await self._call(models_api.cancel_install(install_id))

    async def remove_model(self, model_id: str, force: bool = False) -> models_api.ModelDetail:
        """Delete an installed model (refused while jobs use it unless ``force``)."""
        return await self._call(models_api.remove(model_id, force))

    async def loaded_models(self) -> list[models_api.LoadedModel]:
        """What the workers hold and until when."""
        return await self._call(models_api.loaded())

    async def load_model(
        self, model_id: str, unload: bool = False, keep_alive: float | None = None
    ) -> int:
        """Load (or unload) a model in every worker, a load held ``keep_alive`` seconds
        (default: the daemon's setting); returns how many workers were told. A load
        returns once they hold the model (ApiError 422 with the reason when one cannot)."""
        return await self._call(models_api.load(model_id, unload, keep_alive))

    async def samplers(self) -> list[SamplerInfo]:
        """The samplers and their schedules."""
        return await self._call(core.samplers())

    async def submit(
        self,
        request: Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Submitted:
        """Queue a generation; the same ``idempotency_key`` always returns the same job."""
        return await self._call(core.submit(request, fields, idempotency_key))

    async def status(self, job_id: str) -> JobStatus:
        """The current state of a job."""
        return await self._call(core.status(job_id))

    async def cancel(self, job_id: str) -> JobStatus:
        """Cancel a queued or running job."""
        return await self._call(core.cancel(job_id))

    async def set_priority(self, job_id: str, priority: int) -> JobStatus:
        """Change a queued job's priority (higher runs first)."""
        return await self._call(core.set_priority(job_id, priority))

    async def delete(self, job_id: str) -> None:
        """Remove a finished job and its images."""
        await self._call(core.delete(job_id))

    async def queue(self) -> QueueState:
        """Running and queued jobs, in run order."""
        return await self._call(core.queue())

    async def pause(self) -> bool:
        """Stop starting new jobs; returns the paused flag."""
        return await self._call(core.pause())

    async def resume(self) -> bool:
        """Start jobs again; returns the paused flag."""
        return await self._call(core.resume())

    async def clear_queue(self, running: bool = False) -> list[str]:
        """Cancel every queued job (with ``running``, the running ones too); returns the ids
        cancelled, queued ones in run order first."""
        return await self._call(core.clear_queue(running))

    async def plugins(self) -> list[PluginInfo]:
        """The installed plugins, enabled or not, with any load error."""
        return await self._call(list_plugins())

    async def set_plugin_enabled(self, name: str, enabled: bool) -> PluginInfo:
        """Enable or disable a plugin; it applies from the next job."""
        return await self._call(set_plugin_enabled(name, enabled))

    async def history(
        self,
        *,
        status: str | Sequence[str] | None = None,
        model: str | None = None,
        q: str | None = None,
        limit: int = 50,
    ) -> AsyncIterator[HistoryPage]:
        """Past jobs, newest first, one page at a time."""
        cursor: str | None = None
        while True:
            call = core.history_page(cursor, limit, core.history_status(status), model, q)
            page = await self._call(call)
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def download_image(self, job_id: str, index: int, *, thumb: int | None = None) -> bytes:
        """The PNG bytes of one result image (a JPEG thumbnail with ``thumb``)."""
        return await self._call(core.download_image(job_id, index, thumb))

    async def upload_image(self, image: ImageSource, *, filename: str | None = None) -> str:
        """Upload an init image or mask (a path, bytes, a file opened with 'rb', a PIL image);
        pass ``f"upload:{id}"`` in a request."""
        return (await self._call(core.upload_image(image, filename))).id

    async def upscalers(self) -> list[UpscalerEntry]:
        """None, Lanczos, Nearest and each installed ONNX super-resolution model."""
        return await self._call(core.upscalers())

    async def upscale(
        self,
        image: str,
        upscaler: str = "lanczos",
        scale: float = 2.0,
        *,
        width: int | None = None,
        height: int | None = None,
        crop: bool = True,
    ) -> bytes:
        """The PNG of ``image`` (``upload:<id>``, base64, or an output's ``<job>/<index>``)
        upscaled by ``scale``, or to ``width`` x ``height``; its text chunks are kept."""
        return await self._call(core.upscale(image, upscaler, scale, width, height, crop))

    async def events(
        self, since: int | None = None, job: str | None = None
    ) -> AsyncIterator[Event]:
        """Events as they happen (after ``since`` first); reconnects after a dropped stream,
        and after a restart of the daemon (DaemonNotRunning when it stays away for
        ``stream.RESTART_GRACE`` seconds)."""
        cursor = stream.StreamCursor(since, job)
        while True:
            try:
                async for event in self._stream(cursor):
                    cursor.connected()
                    if event is not None:
                        cursor.seen(event)
                        yield event
            except httpx.TransportError as exc:
                await asyncio.sleep(cursor.dropped(exc))
            except DaemonNotRunning as exc:
                await asyncio.sleep(cursor.gone(exc))
            except ApiError as exc:
                await asyncio.sleep(cursor.busy(exc))
            else:
                await asyncio.sleep(cursor.dropped(StreamError("the daemon closed the stream")))

    async def wait(
        self,
        job_id: str,
        on_progress: Callable[[Event], object] | None = None,
        timeout: float | None = None,
    ) -> JobStatus:
        """Follow the job's events until it ends; ``on_progress`` (sync or async) gets the rest."""
        cursor = stream.StreamCursor(0, job_id, timeout)
        current = await self.status(job_id)
        while not current.finished:
            try:
                async for event in self._stream(cursor):
                    cursor.check_deadline()
                    if event is None or event.job_id != job_id:
                        continue
                    cursor.seen(event)
                    if stream.ends_job(event, job_id):
                        return await self.status(job_id)
                    if on_progress is not None:
                        outcome = on_progress(event)
                        if inspect.isawaitable(outcome):
                            await outcome
            except httpx.TransportError as exc:
                cursor.check_deadline()
                await asyncio.sleep(cursor.dropped(exc))
            except ApiError as exc:
                cursor.check_deadline()
                await asyncio.sleep(cursor.busy(exc))
            else:
                await asyncio.sleep(cursor.dropped(StreamError("the daemon closed the stream")))
            # The job may have ended while the stream was down.
            current = await self.status(job_id)
        return current

    async def _stream(self, cursor: stream.StreamCursor) -> AsyncIterator[Event | None]:
        """One SSE connection: its events, and None for chunks holding none (heartbeats)."""
        call = cursor.call()
        timeout = cursor.timeout(self._timeout)
        response = await self._send(lambda http: call.request(http, timeout), stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                core.raise_for_status(response)
            reader = stream.EventReader()
            async for chunk in response.aiter_bytes():
                events = reader.feed(chunk)
                if not events:
                    yield None
                for event in events:
                    yield event
        finally:
            await response.aclose()
