"""The blocking client: ``Client`` sends the calls that impasto.client.core builds."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from impasto.client.transport import sync_transport
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


class Client:
    """Blocking client of the daemon; finds it through the discovery file unless told where.

    One client may be shared by threads. When it found the daemon through the discovery file,
    a daemon restarted on another port or with another token is found again by itself."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        socket: str | os.PathLike[str] | None = None,
        token: str | None = None,
        runtime_dir: str | os.PathLike[str] | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._transport = transport
        self._timeout_s = timeout
        locator = Locator(base_url, socket, token, runtime_dir, transport is not None)
        self._timeout: httpx.Timeout = client_options(locator.endpoint, timeout)["timeout"]
        self._conn = Connection(locator, self._connect)
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> Endpoint:
        """Where and how the daemon is reached now."""
        return self._conn.locator.endpoint

    @property
    def where(self) -> str:
        """The socket or URL this client talks to, for messages."""
        return self.endpoint.where

    def _connect(self, endpoint: Endpoint) -> httpx.Client:
        transport = self._transport or sync_transport(endpoint)
        return httpx.Client(transport=transport, **client_options(endpoint, self._timeout_s))

    def close(self) -> None:
        """Close the connections."""
        with self._lock:
            for http in self._conn.take_all():
                http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _follow(self, failed: httpx.Client) -> bool:
        """After ``failed`` could not connect or had its token refused: True when requests now
        go to a daemon found again through the discovery file (or another thread did that)."""
        with self._lock:
            return self._conn.follow(failed)

    def _send(
        self, build: Callable[[httpx.Client], httpx.Request], stream: bool = False
    ) -> httpx.Response:
        """Send the request ``build`` makes; once more to a daemon that restarted elsewhere
        (nothing was sent, or the old token was refused). A failed connect is DaemonNotRunning;
        other transport errors are the caller's."""
        for last in (False, True):
            http = self._conn.http
            try:
                response = http.send(build(http), stream=stream)
            except CONNECT_ERRORS as exc:
                if not last and self._follow(http):
                    continue
                raise core.transport_error(exc, self.where) from exc
            if response.status_code == 401 and not last and self._follow(http):
                response.close()
                continue
            return response
        raise AssertionError("unreachable")

    def _call(self, call: core.Call[T]) -> T:
        try:
            response = self._send(call.request)
        except httpx.TransportError as exc:
            raise core.transport_error(exc, self.where) from exc
        core.raise_for_status(response)
        return call.parse(response)

    def health(self) -> Health:
        """Whether the daemon answers, and its version."""
        return self._call(core.health())

    def system(self) -> SystemInfo:
        """Version, execution provider, hardware, queue counts, loaded models, workers."""
        return self._call(core.system())

    def models(self) -> list[ModelInfo]:
        """The installed models."""
        return self._call(core.models())

    def model_details(self, types: Sequence[str] = ()) -> list[models_api.ModelDetail]:
        """Every installed model (of ``types`` when given) with its source, hash and license."""
        return self._call(models_api.model_list(types))

    def model(self, model_id: str) -> models_api.ModelDetail:
        """One installed model with its source, hash and license."""
        return self._call(models_api.model(model_id))

    def model_catalog(self) -> list[models_api.CatalogEntry]:
        """The model catalog with the build this machine would get from each entry."""
        return self._call(models_api.catalog())

    def install_model(self, source: str, **options: Any) -> models_api.InstallStatus:
        """Start installing a catalog name, hub repo id, URL or path; returns the task."""
        return self._call(models_api.install(source, **options))

    def install_status(self, install_id: str) -> models_api.InstallStatus:
        """One install task and its progress."""
        return self._call(models_api.install_status(install_id))

    def installs(self) -> list[models_api.InstallStatus]:
        """Running and recent installs."""
        return self._call(models_api.installs())

    def cancel_install(self, install_id: str) -> models_api.InstallStatus:
        """Cancel a running install."""
        return self._call(models_api.cancel_install(install_id))

    def remove_model(self, model_id: str, force: bool = False) -> models_api.ModelDetail:
        """Delete an installed model (refused while jobs use it unless ``force``)."""
        return self._call(models_api.remove(model_id, force))

    def loaded_models(self) -> list[models_api.LoadedModel]:
        """What the workers hold and until when."""
        return self._call(models_api.loaded())

    def load_model(
        self, model_id: str, unload: bool = False, keep_alive: float | None = None
    ) -> int:
        """Load (or unload) a model in every worker, a load held ``keep_alive`` seconds
        (default: the daemon's setting); returns how many workers were told. A load
        returns once they hold the model (ApiError 422 with the reason when one cannot)."""
        return self._call(models_api.load(model_id, unload, keep_alive))

    def samplers(self) -> list[SamplerInfo]:
        """The samplers and their schedules."""
        return self._call(core.samplers())

    def submit(
        self,
        request: Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Submitted:
        """Queue a generation; the same ``idempotency_key`` always returns the same job."""
        return self._call(core.submit(request, fields, idempotency_key))

    def status(self, job_id: str) -> JobStatus:
        """The current state of a job."""
        return self._call(core.status(job_id))

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel a queued or running job."""
        return self._call(core.cancel(job_id))

    def set_priority(self, job_id: str, priority: int) -> JobStatus:
        """Change a queued job's priority (higher runs first)."""
        return self._call(core.set_priority(job_id, priority))

    def delete(self, job_id: str) -> None:
        """Remove a finished job and its images."""
        self._call(core.delete(job_id))

    def queue(self) -> QueueState:
        """Running and queued jobs, in run order."""
        return self._call(core.queue())

    def pause(self) -> bool:
        """Stop starting new jobs; returns the paused flag."""
        return self._call(core.pause())

    def resume(self) -> bool:
        """Start jobs again; returns the paused flag."""
        return self._call(core.resume())

    def clear_queue(self, running: bool = False) -> list[str]:
        """Cancel every queued job (with ``running``, the running ones too); returns the ids
        cancelled, queued ones in run order first."""
        return self._call(core.clear_queue(running))

    def plugins(self) -> list[PluginInfo]:
        """The installed plugins, enabled or not, with any load error."""
        return self._call(list_plugins())

    def set_plugin_enabled(self, name: str, enabled: bool) -> PluginInfo:
        """Enable or disable a plugin; it applies from the next job."""
        return self._call(set_plugin_enabled(name, enabled))

    def history(
        self,
        *,
        status: str | Sequence[str] | None = None,
        model: str | None = None,
        q: str | None = None,
        limit: int = 50,
    ) -> Iterator[HistoryPage]:
        """Past jobs, newest first, one page at a time."""
        cursor: str | None = None
        while True:
            call = core.history_page(cursor, limit, core.history_status(status), model, q)
            page = self._call(call)
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def download_image(self, job_id: str, index: int, *, thumb: int | None = None) -> bytes:
        """The PNG bytes of one result image (a JPEG thumbnail with ``thumb``)."""
        return self._call(core.download_image(job_id, index, thumb))

    def upload_image(self, image: ImageSource, *, filename: str | None = None) -> str:
        """Upload an init image or mask (a path, bytes, a file opened with 'rb', a PIL image);
        pass ``f"upload:{id}"`` in a request."""
        return self._call(core.upload_image(image, filename)).id

    def upscalers(self) -> list[UpscalerEntry]:
        """None, Lanczos, Nearest and each installed ONNX super-resolution model."""
        return self._call(core.upscalers())

    def upscale(
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
        return self._call(core.upscale(image, upscaler, scale, width, height, crop))

    def events(self, since: int | None = None, job: str | None = None) -> Iterator[Event]:
        """Events as they happen (after ``since`` first); reconnects after a dropped stream,
        and after a restart of the daemon (DaemonNotRunning when it stays away for
        ``stream.RESTART_GRACE`` seconds)."""
        cursor = stream.StreamCursor(since, job)
        while True:
            try:
                for event in self._stream(cursor):
                    cursor.connected()
                    if event is not None:
                        cursor.seen(event)
                        yield event
            except httpx.TransportError as exc:
                time.sleep(cursor.dropped(exc))
            except DaemonNotRunning as exc:
                time.sleep(cursor.gone(exc))
            except ApiError as exc:
                time.sleep(cursor.busy(exc))
            else:
                time.sleep(cursor.dropped(StreamError("the daemon closed the stream")))

    def wait(
        self,
        job_id: str,
        on_progress: Callable[[Event], object] | None = None,
        timeout: float | None = None,
    ) -> JobStatus:
        """Follow the job's events until it ends; ``on_progress`` gets every earlier event."""
        cursor = stream.StreamCursor(0, job_id, timeout)
        current = self.status(job_id)
        while not current.finished:
            try:
                for event in self._stream(cursor):
                    cursor.check_deadline()
                    if event is None or event.job_id != job_id:
                        continue
                    cursor.seen(event)
                    if stream.ends_job(event, job_id):
                        return self.status(job_id)
                    if on_progress is not None:
                        on_progress(event)
            except httpx.TransportError as exc:
                cursor.check_deadline()
                time.sleep(cursor.dropped(exc))
            except ApiError as exc:
                cursor.check_deadline()
                time.sleep(cursor.busy(exc))
            else:
                time.sleep(cursor.dropped(StreamError("the daemon closed the stream")))
            # The job may have ended while the stream was down.
            current = self.status(job_id)
        return current

    def _stream(self, cursor: stream.StreamCursor) -> Iterator[Event | None]:
        """One SSE connection: its events, and None for chunks holding none (heartbeats)."""
        call = cursor.call()
        timeout = cursor.timeout(self._timeout)
        response = self._send(lambda http: call.request(http, timeout), stream=True)
        try:
            if response.status_code >= 400:
                response.read()
                core.raise_for_status(response)
            reader = stream.EventReader()
            for chunk in response.iter_bytes():
                events = reader.feed(chunk)
                if not events:
                    yield None
                yield from events
        finally:
            response.close()
