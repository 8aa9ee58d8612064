"""Installs from URLs may not reach this machine or its network by a name that resolves there.

The fake resolver stands in for a public DNS name answering 127.0.0.1 (or answering a public
address first and 127.0.0.1 the next time: DNS rebinding); the server is a real one on the
loopback, which is what such a name would reach.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from impasto.services.downloads import DownloadError, RemoteFile, fetch
from impasto.services.egress import Egress, EgressRefused, guarded_client, is_local
from tests.harness import Daemon
from tests.models_manager.conftest import wait_install

SECRET = b"what a service on this machine answers"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(SECRET)))
        self.end_headers()
        self.wfile.write(SECRET)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def loopback_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


@pytest.fixture
def names_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``*.example`` name resolves to 127.0.0.1, as a hostile DNS server could say."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".example"):
            host = "127.0.0.1"
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _fetch(url: str, dest: Path, on_hub: bool = False) -> str:
    remote = RemoteFile(url, "model.safetensors", on_hub=on_hub)
    return fetch(remote, dest, max_size=1 << 20, progress=lambda n: None, cancel=threading.Event())


@pytest.mark.usefixtures("names_to_loopback")
def test_a_remote_name_resolving_to_loopback_is_refused(
    loopback_server: int, tmp_path: Path
) -> None:
    url = f"http://models.example:{loopback_server}/model.safetensors"
    with pytest.raises(DownloadError, match=r"models\.example resolves to 127\.0\.0\.1.*refused"):
        _fetch(url, tmp_path / "model.safetensors")
    assert not (tmp_path / "model.safetensors").exists()


@pytest.mark.usefixtures("names_to_loopback")
def test_a_redirect_to_a_name_resolving_to_loopback_is_refused(
    loopback_server: int, tmp_path: Path
) -> None:
    # Each connection is checked where it is made, a redirect's as much as the first one.
    def public_then_local(host: str, port: int) -> list[str]:
        return ["93.184.216.34"] if host == "cdn.example" else ["127.0.0.1"]

    egress = Egress("https://cdn.example/x", "x", resolver=public_then_local)
    assert not egress.local_ok
    with pytest.raises(
        EgressRefused,
        match=r"internal\.example \(redirected from cdn\.example\) resolves to 127\.0\.0\.1",
    ):
        egress.addresses("internal.example", loopback_server)
    with (
        guarded_client(
            f"https://cdn.example:{loopback_server}/x",
            "x",
            timeout=5,
            resolver=public_then_local,
        ) as client,
        pytest.raises(EgressRefused),
    ):
        client.get(f"http://internal.example:{loopback_server}/s")


def test_one_local_answer_among_public_ones_is_enough_to_refuse() -> None:
    egress = Egress(
        "https://models.example/x", "x", resolver=lambda h, p: ["93.184.216.34", "10.1.2.3"]
    )
    with pytest.raises(EgressRefused, match=r"10\.1\.2\.3"):
        egress.addresses("models.example", 443)


def test_the_connection_goes_to_the_address_that_was_checked(loopback_server: int) -> None:
    """No second lookup: the name below exists only in the resolver the check used."""
    with guarded_client(
        "http://127.0.0.1/", "x", timeout=5, resolver=lambda h, p: ["127.0.0.1"]
    ) as client:
        assert client.get(f"http://only-in-the-check.invalid:{loopback_server}/").content == SECRET


@pytest.mark.usefixtures("names_to_loopback")
def test_a_url_the_user_gave_on_this_machine_still_installs(
    loopback_server: int, tmp_path: Path
) -> None:
    _fetch(f"http://127.0.0.1:{loopback_server}/model.safetensors", tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == SECRET
    # The hub endpoint is the user's setting: a mirror whose name resolves locally is fine.
    _fetch(f"http://mirror.example:{loopback_server}/model.safetensors", tmp_path / "b", True)
    assert (tmp_path / "b").read_bytes() == SECRET


@pytest.mark.parametrize(
    "host",
    [
        "localhost.",
        "LOCALHOST",
        "127.0.0.1.",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "[::]",
        "[fe80::1%25eth0]",
        "100.100.1.1",  # the shared range Tailscale and carrier NAT use
        "[fd00::1]",
    ],
)
def test_local_spellings_are_local(host: str) -> None:
    assert is_local(httpx.URL(f"http://{host}/").host)


def test_every_download_client_is_a_guarded_one() -> None:
    """The daemon's own requests (installs, hub reads) go through egress.guarded_client; a
    plain httpx client elsewhere would skip the check of what names resolve to."""
    root = Path(__file__).parents[2] / "daemon" / "impasto"
    plain = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.parent.name != "client"  # the CLI's client of the daemon's own API
        and path.name != "egress.py"
        and ("httpx.Client(" in path.read_text() or "httpx.AsyncClient(" in path.read_text())
    ]
    assert plain == []


def _local_hostname() -> str | None:
    """This machine's name, when it resolves to an address of this machine (most do)."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 80)}
    except OSError:
        return None
    return name if addresses and all(is_local(a) for a in addresses) else None


def test_through_the_api_a_url_naming_this_machine_by_name_is_refused(tmp_path: Path) -> None:
    name = _local_hostname()
    if name is None:
        pytest.skip("this machine's name does not resolve to a local address")
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    daemon = Daemon(tmp_path).start()
    try:
        with daemon.client() as client:
            url = f"http://{name}:{server.server_port}/model.safetensors"
            answer = client.post("/api/v1/models/install", json={"source": url})
            assert answer.status_code == 202, answer.text
            done = wait_install(client, answer.json()["id"], {"failed", "completed"})
        assert done["status"] == "failed"
        assert f"{name} resolves to" in done["error"] and "refused" in done["error"], done
    finally:
        daemon.stop()
        server.shutdown()


class _Proxy(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)  # a proxy gets the absolute URL
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"proxy")

    def log_message(self, *args: Any) -> None:
        pass


def test_downloads_still_go_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_port}")
        with guarded_client("http://files.example/m", "m", timeout=5) as client:
            assert client.get("http://files.example/m").content == b"proxy"
        assert _Proxy.seen == ["http://files.example/m"]
    finally:
        proxy.shutdown()
