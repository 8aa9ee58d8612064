"""``impasto serve``: one process serving the API on TCP and a Unix socket, supervising workers."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import ipaddress
import logging
import os
import secrets
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from impasto import __version__, discovery
from impasto.api.app import create_app
from impasto.api.routes.plugins import plugin_routers
from impasto.api.security import mark_transport
from impasto.assembly import build_services
from impasto.formats.png import remove_stale_temp_files
from impasto.paths import Paths, resolve_paths
from impasto.plugins import AppContext
from impasto.plugins.discovery import build_plugin_manager
from impasto.services.retention import sweep_uploads_forever
from impasto.settings import Settings
from impasto.settings_load import LoadedSettings
from impasto.startup import (
    StartupError,
    check_port,
    check_settings,
    check_socket_path,
    claim_instance,
    make_folders,
    start_logging,
)
from impasto.store.db import DatabaseError

log = logging.getLogger("impasto.server")


def _bind_host(settings: Settings) -> str:
    return "127.0.0.1" if settings.host == "localhost" else settings.host


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def connection_limits(settings: Settings) -> dict[str, Any]:
    """granian options so idle or slow clients cannot starve the API (docs/troubleshooting.md).

    granian holds one of ``backpressure`` permits per open connection, idle keep-alive ones too;
    hyper's header timeout closes a connection that sends no complete request head in time,
    which also ends idle keep-alive connections.
    """
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    raise_open_files_limit(2 * settings.max_connections + 256)
    return {
        "interface": Interfaces.ASGINL,
        "log_enabled": False,
        # HTTP/1 only: with protocol detection ("auto") a connection that never sends a byte
        # escapes the header timeout; local clients and browsers without TLS speak HTTP/1.1.
        "http": HTTPModes.http1,
        "backlog": max(128, settings.max_connections),
        "backpressure": settings.max_connections,
        "http1_settings": HTTP1Settings(
            header_read_timeout=max(1, round(settings.header_timeout * 1000))
        ),
    }


def raise_open_files_limit(wanted: int) -> None:
    """Each connection is a file descriptor: lift the soft limit toward ``wanted`` (POSIX)."""
    try:
        import resource
    except ImportError:  # Windows has no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _wait_listening(
    host: str, port: int, sock: Path | None, servers: list[asyncio.Task[Any]], timeout: float = 15.0
) -> None:
    """Return once the port answers and the socket exists; a server that ends meanwhile (it
    could not listen) is a StartupError with its reason."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for task in servers:
            if task.done():
                raise StartupError(f"the server could not start: {task.exception()}")
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            if sock is None or sock.exists():
                return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise StartupError(f"the server did not start listening on {host}:{port}")


async def run_daemon(
    settings: Settings, paths: Paths, plugin_config: dict[str, dict[str, Any]] | None = None
) -> int:
    from granian.server.embed import Server

    from impasto.engine.schedulers import register_sampler

    # Requests wait in threads for blocking work (a plugin's hook, up to 30 s; files; SQL):
    # more of them than asyncio's default (cores + 4), so a few slow ones stall no other.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=64, thread_name_prefix="impasto-io")
    )
    plugins = build_plugin_manager(
        data_dir=paths.data_dir, models_dir=paths.models_dir, config=plugin_config
    )
    plugins.register_samplers(register_sampler)
    services = build_services(settings, paths, plugins)
    plugins.startup(AppContext(settings=settings, paths=paths, services=services))
    services.jobs.runner.recover_orphans()
    if services.jobs.paused:
        log.info("the queue is paused, as it was left: queued jobs wait for a resume")
    assert services.models is not None
    relocated = services.models.relocate_adapters()
    if relocated:
        log.info("moved %d installed LoRA(s)/embedding(s) into loras/ and embeddings/", relocated)
    removed = remove_stale_temp_files(paths.output_dir)
    if removed:
        log.info("removed %d partial files left by a crash", removed)

    host = _bind_host(settings)
    port = settings.port or _free_port(host)
    app = create_app(services, extra_routers=plugin_routers(plugins))
    limits = connection_limits(settings)
    servers = [Server(app, address=host, port=port, **limits)]
    use_socket = settings.socket and sys.platform != "win32"
    if use_socket:
        servers.append(Server(mark_transport(app, "unix"), uds=paths.socket, **limits))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    old_umask = os.umask(0o177)  # the socket is created owner-only, not widened afterwards
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    try:
        await _wait_listening(host, port, paths.socket if use_socket else None, tasks)
    finally:
        os.umask(old_umask)
    if use_socket:
        os.chmod(paths.socket, 0o600)
    # Only now: the umask above is the whole process's, and a resumed install's threads make
    # folders (made 0600 under it, they could not be entered).
    resumed = services.models.installer.resume()
    if resumed:
        log.info("resuming %d unfinished model install(s)", len(resumed))
    pipe_servers: list[Any] = []
    pipe = None
    if settings.socket and sys.platform == "win32":
        from impasto.winpipe import pipe_name, serve_pipe, tcp_relay

        pipe = pipe_name()
        pipe_servers = await serve_pipe(pipe, tcp_relay(host, port))
    url_host = _local_host(host)
    info = discovery.DaemonInfo(
        pid=os.getpid(),
        url=f"http://{url_host}:{port}",
        socket=str(paths.socket) if use_socket else pipe,
        token=settings.token,
        version=__version__,
    )
    discovery.write(paths.discovery_file, info)
    assert services.supervisor is not None
    services.supervisor.start()
    print(f"Impasto {__version__} is running at {info.url}/", flush=True)
    if url_host != (f"[{host}]" if ":" in host else host):  # a wildcard bind
        print(f"Listening on every network interface ({host}, port {port})", flush=True)
    if use_socket:
        print(f"API socket: {paths.socket}", flush=True)
    # The log says where it ran from too (the terminal's lines above may be gone).
    log.info(
        "Impasto %s started (pid %d): %s/, %s; data %s, models %s, outputs %s, %s",
        __version__,
        os.getpid(),
        info.url,
        f"socket {info.socket}" if info.socket else "no socket",
        paths.data_dir,
        paths.models_dir,
        paths.output_dir,
        # The workers started, not the setting (0 means one per NVIDIA GPU, or 1).
        f"workers on the Ray cluster {settings.cluster}"
        if settings.cluster
        else f"{services.supervisor.count} worker(s)",
    )

    sweeper = asyncio.create_task(sweep_uploads_forever(services, settings.upload_retention_hours))
    watchers = [asyncio.create_task(stop.wait()), *tasks]
    parent = os.environ.get("IMPASTO_PARENT_PID", "")
    if parent.isdigit():
        watchers.append(asyncio.create_task(_parent_gone(int(parent))))
    await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
    # A listener that ends on its own (its port taken between the check and the bind) is a
    # failure, not a stop: say so and exit 1.
    ended = [task for task in tasks if task.done()]
    failure = None
    if ended and not stop.is_set():
        exc = ended[0].exception()
        failure = f"the HTTP server stopped by itself: {exc or 'no error given'}"
        log.error("%s", failure)
    log.info("shutting down")
    sweeper.cancel()
    await services.models.installer.stop()
    await services.supervisor.stop()
    plugins.shutdown()
    services.bus.close_all()
    await services.bus.drain()
    for pipe_server in pipe_servers:
        pipe_server.close()
    for server in servers:
        server.signal_handler_interrupt()
    await asyncio.gather(*tasks, return_exceptions=True)
    discovery.remove(paths.discovery_file, pid=os.getpid())
    services.extra["db"].close()
    if failure:
        print(f"impasto: {failure}", file=sys.stderr, flush=True)
        return 1
    print("Impasto stopped.", flush=True)
    return 0


async def _parent_gone(pid: int) -> None:
    """Return once ``pid`` exits: a supervising tray or test run that dies takes us with it."""
    while discovery.pid_alive(pid):
        await asyncio.sleep(1.0)
    log.warning("parent process %d exited; stopping", pid)


def _local_host(host: str) -> str:
    """The host of the URL local clients use: a wildcard bind (0.0.0.0, ::) is reached on the
    loopback address of its family (a browser or Windows cannot connect to 0.0.0.0)."""
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(host.strip("[]"))
        if address.is_unspecified:
            host = "::1" if address.version == 6 else "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def serve(loaded: LoadedSettings) -> int:
    """Run the daemon until SIGTERM or Ctrl+C; returns the process exit code."""
    settings = loaded.settings
    paths = resolve_paths(settings)
    try:
        check_settings(settings)
        make_folders(paths)
        start_logging(settings, paths)
        # A crash in native code prints every thread's Python stack (no stderr: pythonw).
        with contextlib.suppress(RuntimeError, OSError):
            faulthandler.enable()
        locks = claim_instance(paths)
        try:
            check_port(_bind_host(settings), settings.port)
            if settings.socket and sys.platform != "win32":
                check_socket_path(paths.socket)
            return asyncio.run(run_daemon(settings, paths, loaded.plugins))
        finally:
            for lock in locks:
                lock.release()
    except (StartupError, DatabaseError) as exc:
        print(f"impasto: {exc}", file=sys.stderr)
        return 1


def new_token() -> str:
    """A random token for a non-loopback bind."""
    return secrets.token_urlsafe(32)
