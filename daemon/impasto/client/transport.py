"""httpx transports: the Unix socket first, TCP when the socket refuses the connection."""

from __future__ import annotations

import httpx

from impasto.client.discovery import Endpoint


class FallbackTransport(httpx.BaseTransport):
    """Try ``primary``; when it fails to connect, send that request over ``secondary``.

    The socket is tried again on the next request: a refused connect costs microseconds, and a
    daemon restarted meanwhile listens on it again. Nothing here changes after construction,
    so threads may share the transport."""

    def __init__(self, primary: httpx.BaseTransport, secondary: httpx.BaseTransport) -> None:
        self._primary = primary
        self._secondary = secondary

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send over the socket, or over TCP when the socket refuses the connection."""
        try:
            return self._primary.handle_request(request)
        except httpx.ConnectError:
            # A stale socket file from a crash: the daemon may still listen on TCP.
            return self._secondary.handle_request(request)

    def close(self) -> None:
        """Close both transports."""
        self._primary.close()
        self._secondary.close()


class AsyncFallbackTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of FallbackTransport."""

    def __init__(
        self, primary: httpx.AsyncBaseTransport, secondary: httpx.AsyncBaseTransport
    ) -> None:
        self._primary = primary
        self._secondary = secondary

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send over the socket, or over TCP when the socket refuses the connection."""
        try:
            return await self._primary.handle_async_request(request)
        except httpx.ConnectError:
            return await self._secondary.handle_async_request(request)

    async def aclose(self) -> None:
        """Close both transports."""
        await self._primary.aclose()
        await self._secondary.aclose()


def sync_transport(endpoint: Endpoint) -> httpx.BaseTransport:
    """The transport for ``endpoint``: socket with TCP fallback, or TCP alone."""
    if endpoint.socket and not endpoint.tcp_fallback:
        return httpx.HTTPTransport(uds=endpoint.socket)
    tcp = httpx.HTTPTransport()
    if endpoint.socket:
        return FallbackTransport(httpx.HTTPTransport(uds=endpoint.socket), tcp)
    return tcp


def async_transport(endpoint: Endpoint) -> httpx.AsyncBaseTransport:
    """The asyncio transport for ``endpoint``."""
    if endpoint.socket and not endpoint.tcp_fallback:
        return httpx.AsyncHTTPTransport(uds=endpoint.socket)
    tcp = httpx.AsyncHTTPTransport()
    if endpoint.socket:
        return AsyncFallbackTransport(httpx.AsyncHTTPTransport(uds=endpoint.socket), tcp)
    return tcp
