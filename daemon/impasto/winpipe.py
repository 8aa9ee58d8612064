"""Windows named pipe ``\\\\.\\pipe\\impasto-<user>``, relayed to the loopback port.

granian speaks neither named pipes nor Unix sockets on Windows, so the pipe end is a byte relay
in front of the TCP listener. The relay itself is plain asyncio streams and is tested on every OS;
only ``serve_pipe`` needs Windows' proactor event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import re
import sys
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("impasto.winpipe")
CHUNK = 64 * 1024

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]


def pipe_name(user: str | None = None) -> str:
    """The per-user pipe path; characters a pipe name cannot hold become '-'."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", user or getpass.getuser())
    return rf"\\.\pipe\impasto-{safe}"


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        # Half-close: the peer sees end of stream, the other direction keeps flowing.
        with contextlib.suppress(OSError, RuntimeError, AttributeError):
            if writer.can_write_eof():
                writer.write_eof()


def tcp_relay(host: str, port: int) -> StreamHandler:
    """A connection handler that relays both directions to ``host:port`` until both ends close."""

    async def handle(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            log.warning(
                "pipe client refused: the daemon's port %s:%s is not answering (%s)",
                host,
                port,
                exc,
            )
            client_writer.close()
            return
        try:
            await asyncio.gather(
                _pump(client_reader, upstream_writer), _pump(upstream_reader, client_writer)
            )
        finally:
            for writer in (upstream_writer, client_writer):
                with contextlib.suppress(OSError, RuntimeError):
                    writer.close()

    return handle


class _PipeProtocol(asyncio.StreamReaderProtocol):
    def __init__(self, handler: StreamHandler, loop: asyncio.AbstractEventLoop) -> None:
        reader = asyncio.StreamReader(loop=loop)
        super().__init__(reader, self._connected, loop=loop)
        self._handler = handler
        self._loop = loop
        self._task: asyncio.Task[None] | None = None

    def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._task = self._loop.create_task(self._handler(reader, writer))


async def serve_pipe(name: str, handler: StreamHandler) -> list[Any]:
    """Listen on a named pipe (Windows only); returns the pipe servers to close on shutdown.

    The pipe is created with the default security descriptor, which grants full access to the
    creating user, SYSTEM and administrators and only read access to others (not enough to open
    a duplex connection), and asyncio rejects remote clients.
    """
    if sys.platform != "win32":
        raise RuntimeError("named pipes are a Windows transport; use the Unix socket here")
    loop = asyncio.get_running_loop()
    start = getattr(loop, "start_serving_pipe", None)
    if start is None:
        raise RuntimeError("named pipes need the proactor event loop (the default on Windows)")
    servers: list[Any] = await start(lambda: _PipeProtocol(handler, loop), name)
    return servers
