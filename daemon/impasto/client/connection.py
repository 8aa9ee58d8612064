"""Where the clients reach the daemon, and the HTTP client talking to it there."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import httpx

from impasto.client import core
from impasto.client.discovery import Endpoint, resolve_endpoint
from impasto.client.errors import ImpastoError

H = TypeVar("H", httpx.Client, httpx.AsyncClient)


def endpoint_for(
    base_url: str | None,
    socket: str | os.PathLike[str] | None,
    token: str | None,
    runtime_dir: str | os.PathLike[str] | None,
    has_transport: bool,
) -> Endpoint:
    """The endpoint a client uses; an injected transport with no address skips discovery."""
    if has_transport and base_url is None and socket is None:
        return Endpoint(url="http://localhost", token=token or "")
    return resolve_endpoint(base_url, socket, token, runtime_dir)


class Locator:
    """Finds the daemon, and finds it again after it restarted (a new port, a new token) when
    the discovery file said where it was; an address the caller gave is kept as given."""

    def __init__(
        self,
        base_url: str | None,
        socket: str | os.PathLike[str] | None,
        token: str | None,
        runtime_dir: str | os.PathLike[str] | None,
        has_transport: bool,
    ) -> None:
        self._follows_discovery = base_url is None and socket is None and not has_transport
        self._token = token
        self._runtime_dir = runtime_dir
        self.endpoint = endpoint_for(base_url, socket, token, runtime_dir, has_transport)

    def moved(self) -> Endpoint | None:
        """The daemon's endpoint now if it differs from ``endpoint`` (read again after a
        refused connection or token); None when it is the same, or nothing says where."""
        if not self._follows_discovery:
            return None
        try:
            found = resolve_endpoint(None, None, self._token, self._runtime_dir)
        except ImpastoError:
            return None
        return None if found == self.endpoint else found


def client_options(endpoint: Endpoint, timeout: float) -> dict[str, Any]:
    """httpx client options shared by the sync and async clients."""
    headers = {"Authorization": f"Bearer {endpoint.token}"} if endpoint.token else {}
    return {
        "base_url": endpoint.url,
        "headers": headers,
        "timeout": httpx.Timeout(timeout, connect=core.CONNECT_TIMEOUT),
        # Never route loopback calls through a proxy from the environment.
        "trust_env": False,
    }


CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)


class Connection(Generic[H]):
    """The HTTP client (sync or async) talking to the daemon where ``locator`` says, moved to
    a daemon restarted elsewhere; the clients it replaced close with it (a request in flight
    may still hold one). Not locked: a client shared by threads holds its own lock."""

    def __init__(self, locator: Locator, connect: Callable[[Endpoint], H]) -> None:
        self.locator = locator
        self._connect: Callable[[Endpoint], H] = connect
        self.http: H = connect(locator.endpoint)
        self._retired: list[H] = []

    def follow(self, failed: H) -> bool:
        """After ``failed`` could not connect or had its token refused: True when requests now
        go to a daemon found again through the discovery file (or another caller did that)."""
        if self.http is not failed:
            return True
        endpoint = self.locator.moved()
        if endpoint is None:
            return False
        self.locator.endpoint = endpoint
        self._retired.append(self.http)
        self.http = self._connect(endpoint)
        return True

    def take_all(self) -> list[H]:
        """Every HTTP client made so far, to close (the replaced ones are forgotten)."""
        every = self._retired
        self._retired = []
        every.append(self.http)
        return every
