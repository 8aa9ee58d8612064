"""The named-pipe relay, exercised over asyncio streams (the pipe itself exists only on Windows)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from impasto.winpipe import pipe_name, serve_pipe, tcp_relay


def test_pipe_name_is_per_user_and_safe() -> None:
    assert pipe_name("alice") == r"\\.\pipe\impasto-alice"
    assert pipe_name(r"DOMAIN\bob smith") == r"\\.\pipe\impasto-DOMAIN-bob-smith"


async def _upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read()  # until the relay half-closes
    writer.write(b"echo:" + data[::-1])
    await writer.drain()
    writer.close()


def test_relay_carries_both_directions_and_half_close() -> None:
    async def scenario() -> bytes:
        upstream = await asyncio.start_server(_upstream, "127.0.0.1", 0)
        port = upstream.sockets[0].getsockname()[1]
        # Stand in for the pipe listener: a local server whose connections go through the relay.
        front = await asyncio.start_server(tcp_relay("127.0.0.1", port), "127.0.0.1", 0)
        front_port = front.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", front_port)
        payload = b"x" * 200_000 + b"END"
        writer.write(payload)
        writer.write_eof()
        reply = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        for server in (front, upstream):
            server.close()
            await server.wait_closed()
        return reply

    reply = asyncio.run(scenario())
    assert reply == b"echo:" + (b"x" * 200_000 + b"END")[::-1]


def test_relay_closes_the_client_when_the_daemon_is_down() -> None:
    async def scenario() -> bytes:
        front = await asyncio.start_server(tcp_relay("127.0.0.1", 1), "127.0.0.1", 0)
        port = front.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        front.close()
        await front.wait_closed()
        return data

    assert asyncio.run(scenario()) == b""


@pytest.mark.skipif(sys.platform == "win32", reason="checks the refusal off Windows")
def test_serve_pipe_refuses_off_windows() -> None:
    with pytest.raises(RuntimeError, match="Windows"):
        asyncio.run(serve_pipe(pipe_name("x"), tcp_relay("127.0.0.1", 1)))
