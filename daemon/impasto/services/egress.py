"""Where the daemon's own downloads may connect (an SSRF guard for installs from URLs).

A download from a remote server may not be sent to this machine or its network: not by a
redirect naming such a host, and not by a name that *resolves* there (a public DNS name
answering 127.0.0.1 or 10.0.0.5, or answering differently the second time it is asked: DNS
rebinding). Names are checked where the connection is made, and the connection goes to the
very address that was checked, so no second lookup can change the answer.

A URL the user gave with a local host (``http://127.0.0.1:8080/...``, a LAN address) may
stay local: the user chose that server. So may the configured hub endpoint (``trusted``), a
mirror that may well sit on the local network.

Everything here resolves names and connects: call it off the event loop (installs run in
their own threads).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from httpx._utils import get_environment_proxies  # what httpx.Client(trust_env) reads

Resolver = Callable[[str, int], list[str]]


class DownloadError(Exception):
    """A download failed for a reason retrying will not fix; the message says which file."""


class EgressRefused(DownloadError):
    """A request would reach this machine or its network from a remote URL; the message says
    which host, which address and what to do instead."""


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, each once."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_local(host: str) -> bool:
    """An address that is not a public internet one (loopback, private, link-local, shared,
    unspecified...), or a localhost name (not looked up: see ``Egress`` for names)."""
    host = host.strip("[]").lower().rstrip(".")  # "localhost." is localhost, fully qualified
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
            host.split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) is a link-local address
        )
    except ValueError:
        try:  # the short forms a resolver also reads as an address: 127.1, 2130706433, 0x7f.1
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # Not a public internet address: loopback, private, link-local, shared (100.64/10, as
    # Tailscale uses), unspecified, reserved, multicast.
    return not address.is_global or address.is_multicast


@dataclass
class Egress:
    """The rule for one download started at ``url`` (``what`` names it in messages)."""

    url: str
    what: str
    trusted: bool = False
    resolver: Resolver = resolve
    origin: str = field(init=False)
    local_ok: bool = field(init=False)

    def __post_init__(self) -> None:
        self.origin = (urlsplit(self.url).hostname or "").lower()
        self.local_ok = is_local(self.origin) or (self.trusted and self._resolves_local())

    def _resolves_local(self) -> bool:
        try:
            return any(is_local(a) for a in self.resolver(self.origin, 443))
        except OSError:
            return False

    def check_request(self, request: httpx.Request) -> None:
        """An httpx request hook: the scheme, and a host that names a local address."""
        if request.url.scheme not in ("http", "https"):
            raise EgressRefused(f"{self.what}: redirected to a {request.url.scheme}: URL, refused")
        if not self.local_ok and is_local(request.url.host):
            raise EgressRefused(
                f"{self.what}: {self.origin} redirected to {request.url.host}, an address "
                "on this machine or its network: refused"
            )

    def addresses(self, host: str, port: int) -> list[str]:
        """Where a connection to ``host`` may go: all its addresses, or EgressRefused when
        any of them is local and this download may not be (one local answer is enough for a
        resolver that rotates its answers to land there)."""
        try:
            found = self.resolver(host, port)
        except OSError as exc:  # no such name, no network: a connection error, retried
            raise httpcore.ConnectError(f"{host}: {exc.strerror or exc}") from exc
        if self.local_ok:
            return found
        local = next((a for a in found if is_local(a)), None)
        if local is not None or is_local(host):
            via = "" if host.lower() == self.origin else f" (redirected from {self.origin})"
            raise EgressRefused(
                f"{self.what}: {host}{via} resolves to {local or host}, an address on this "
                "machine or its network, which a download from a remote URL may not reach: "
                "refused (to install from a server there, write its address in the URL)"
            )
        return found


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to an address ``Egress`` checked, never to a name looked up again."""

    def __init__(self, egress: Egress) -> None:
        self.egress = egress
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        failed: httpcore.ConnectError | None = None
        for address in self.egress.addresses(host, port):
            try:
                # TLS still checks the certificate against the URL's host (httpcore passes
                # the origin's name to start_tls), not against this address.
                return self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failed = exc
        raise failed or httpcore.ConnectError(f"{host}: no address to connect to")

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("downloads do not use Unix sockets")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport with a connection pool that connects through ``_PinnedBackend``
    (httpx has no parameter for a network backend; test_egress proves this one is used)."""

    def __init__(self, egress: Egress) -> None:
        super().__init__()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=_PinnedBackend(egress)
        )


def guarded_client(
    url: str, what: str, *, timeout: float, trusted: bool = False, resolver: Resolver = resolve
) -> httpx.Client:
    """An httpx client following redirects for a download from ``url`` under ``Egress``'s rule
    (through a proxy from HTTPS_PROXY, the proxy resolves names; the host check still holds)."""
    egress = Egress(url, what, trusted, resolver)
    return httpx.Client(
        follow_redirects=True,
        timeout=timeout,
        event_hooks={"request": [egress.check_request]},
        transport=_PinnedTransport(egress),
        mounts=_proxy_mounts(),
    )


def _proxy_mounts() -> dict[str, httpx.BaseTransport | None]:
    """The proxies of HTTP(S)_PROXY / ALL_PROXY / NO_PROXY, read as httpx reads them: an
    httpx client given its own transport reads none, and installs must still work behind a
    proxy (a host NO_PROXY names maps to None: the pinned transport)."""
    return {
        pattern: None if proxy is None else httpx.HTTPTransport(proxy=proxy)
        for pattern, proxy in get_environment_proxies().items()
    }
