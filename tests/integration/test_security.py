"""Security: Host and Origin checks, tokens, traversal, file modes, bind rules."""

from __future__ import annotations

import stat

import httpx
import pytest
import websockets.exceptions
import websockets.sync.client as ws_client

from tests.hardening.rawhttp import request
from tests.harness import TINY, Daemon, wait_status


def test_foreign_host_is_refused(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        assert client.get("/api/v1/health", headers={"Host": "evil.example"}).status_code == 403
        assert (
            client.get("/", headers={"Host": f"attacker.test:{impasto_daemon.port}"}).status_code
            == 403
        )
        assert (
            client.get(
                "/api/v1/health", headers={"Host": f"localhost:{impasto_daemon.port}"}
            ).status_code
            == 200
        )
        assert client.get("/api/v1/health", headers={"Host": "[::1]"}).status_code == 200


def test_foreign_origin_on_post_is_refused(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        body = {"prompt": "csrf", **TINY}
        refused = client.post(
            "/api/v1/generate", json=body, headers={"Origin": "http://evil.example"}
        )
        assert refused.status_code == 403
        assert "origin" in refused.json()["detail"]
        same = client.post("/api/v1/generate", json=body, headers={"Origin": impasto_daemon.url})
        assert same.status_code == 202
        wait_status(client, same.json()["id"], {"completed", "failed"})
        # Reads from a foreign origin are harmless without CORS headers, so they pass.
        assert (
            client.get("/api/v1/health", headers={"Origin": "http://evil.example"}).status_code
            == 200
        )


def test_a_host_or_origin_sent_twice_is_refused(impasto_daemon: Daemon) -> None:
    """RFC 9112 3.2: two Host headers are a 400; two Origins would let the check read one."""
    port, own = impasto_daemon.port, "http://127.0.0.1"  # the Host the raw requests send
    twice = request(port, "GET", "/api/v1/health", headers={"Host": "evil.example"})
    assert twice.status == 400 and "more than one Host header" in twice.json()["detail"]
    origins = {"Origin": "http://evil.example", "origin": own}
    twice = request(port, "POST", "/api/v1/queue/resume", headers=origins)
    assert twice.status == 400 and "more than one Origin header" in twice.json()["detail"]
    once = request(port, "POST", "/api/v1/queue/resume", headers={"Origin": own})
    assert once.status == 200, once.body


def test_foreign_origin_on_websocket_is_refused(impasto_daemon: Daemon) -> None:
    url = impasto_daemon.url.replace("http", "ws") + "/api/v1/ws"
    with (
        pytest.raises(
            (websockets.exceptions.InvalidStatus, websockets.exceptions.ConnectionClosed)
        ),
        ws_client.connect(url, origin="http://evil.example") as conn,
    ):
        conn.recv(timeout=5)
    with ws_client.connect(url, origin=impasto_daemon.url) as conn:
        assert conn.protocol.state.name == "OPEN"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/images/../../impasto.db/0",
        "/api/v1/images/%2e%2e%2f%2e%2e%2fimpasto.db/0",
        "/api/v1/images/..%2F..%2Fetc%2Fpasswd/0",
        "/api/v1/images//etc/passwd/0",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/js/../../daemon/impasto/settings.py",
    ],
)
def test_path_traversal_is_refused(impasto_daemon: Daemon, path: str) -> None:
    with impasto_daemon.client() as client:
        response = client.get(path)
        assert response.status_code in (400, 404), (path, response.status_code)
        assert b"root:" not in response.content and b"SQLite" not in response.content


def test_symlinked_output_is_not_served(impasto_daemon: Daemon, tmp_path) -> None:
    """A result whose file was swapped for a symlink out of the outputs folder is refused."""
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not for you")
    with impasto_daemon.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "symlink", **TINY}).json()
        done = wait_status(client, job["id"], {"completed"})
        [png] = list(impasto_daemon.data_dir.glob(f"outputs/*/{job['id']}-0.png"))
        png.unlink()
        png.symlink_to(secret)
        response = client.get(done["results"][0]["url"])
        assert response.status_code == 404
        assert b"not for you" not in response.content


def test_socket_and_discovery_file_are_private(impasto_daemon: Daemon) -> None:
    assert stat.S_IMODE(impasto_daemon.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(impasto_daemon.discovery_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(impasto_daemon.runtime_dir.stat().st_mode) == 0o700
    info = impasto_daemon.discovery()
    assert info["url"] == impasto_daemon.url and info["socket"] == str(impasto_daemon.socket)
    assert info["pid"] == impasto_daemon.process.pid


def test_non_loopback_bind_without_token_is_refused(tmp_path) -> None:
    daemon = Daemon(tmp_path, host="0.0.0.0")
    result = daemon.refused()
    assert result.returncode != 0
    assert "without a token" in result.stderr and "IMPASTO_TOKEN" in result.stderr
    assert not daemon.discovery_file.exists()


def test_token_is_required_when_set(daemon_factory: type[Daemon], tmp_path) -> None:
    daemon = daemon_factory(tmp_path, token="s3cret-token").start()
    bare = httpx.Client(base_url=daemon.url, timeout=10)
    with bare:
        assert bare.get("/api/v1/health").status_code == 200  # liveness stays open
        denied = bare.get("/api/v1/queue")
        assert denied.status_code == 401 and "Bearer" in denied.json()["detail"]
        assert (
            bare.get("/api/v1/queue", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        assert bare.get("/api/v1/queue", params={"token": "s3cret-token"}).status_code == 200
        # Two tokens are none, in either order: no layer may read another one than this one.
        for twice in (["s3cret-token", "wrong"], ["wrong", "s3cret-token"]):
            params = [("token", value) for value in twice]
            assert bare.get("/api/v1/queue", params=params).status_code == 401
        assert bare.get("/", follow_redirects=True).status_code == 200  # the UI loads to ask for it
    with daemon.client() as client:
        assert client.get("/api/v1/queue").status_code == 200
    assert daemon.discovery()["token"] == "s3cret-token"
    log = (tmp_path / "logs" / "daemon.log").read_text() + daemon.output()
    assert "s3cret-token" not in log


def test_second_daemon_refuses_to_start(impasto_daemon: Daemon) -> None:
    twin = Daemon(impasto_daemon.root)
    result = twin.refused()
    assert result.returncode == 1
    assert "already running" in result.stderr and str(impasto_daemon.process.pid) in result.stderr
    assert impasto_daemon.discovery()["pid"] == impasto_daemon.process.pid
