"""Installs attacked through the API of a real daemon: FIFOs, devices, bombs, pickles, paths."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from impasto.services.safety import UnsafeContentError, copy_file
from tests.harness import Daemon
from tests.models_manager.conftest import TINY, wait_install
from tests.models_manager.fakehub import FakeHub

MB = 1024 * 1024
REPO_LORA = TINY / "shapes-adapters" / "loras" / "shapes-dotted.safetensors"


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    server = FakeHub()
    yield server
    server.close()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one folder local installs may read (install_roots)."""
    return tmp_path_factory.mktemp("sources")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, sources: Path) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("hard-installs")
    running = Daemon(root, workers=1, install_roots=[str(sources)]).start()
    yield running
    running.stop()


def health_answers_while(client: httpx.Client, action: threading.Thread) -> float:
    """Run ``action`` and return the slowest /health answer seen while it ran."""
    slowest = 0.0
    action.start()
    while action.is_alive():
        started = time.monotonic()
        assert client.get("/api/v1/health", timeout=5.0).status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.02)
    action.join()
    return slowest


def test_a_fifo_source_is_refused_and_the_daemon_keeps_answering(
    daemon: Daemon, sources: Path
) -> None:
    fifo = sources / "pipe.safetensors"
    os.mkfifo(fifo)
    folder = sources / "fifo-inside"
    shutil.copytree(TINY / "sd-tiny", folder)
    os.mkfifo(folder / "unet" / "extra.safetensors")
    answers: list[httpx.Response] = []

    def submit() -> None:
        with daemon.client() as c:
            for source in (fifo, folder):
                answers.append(c.post("/api/v1/models/install", json={"source": str(source)}))

    with daemon.client() as c:
        health_answers_while(c, threading.Thread(target=submit))
        for answer in answers:
            assert answer.status_code == 422, answer.text
            body = answer.json()
            assert body["errors"][0]["field"] == "source"
            assert "named pipe" in body["detail"]
        # The TCP API and the socket both still answer and nothing was queued.
        assert c.get("/api/v1/models/installs").json() == []
    with daemon.socket_client() as s:
        assert s.get("/api/v1/health").status_code == 200


def test_a_fifo_swapped_in_is_never_opened_blocking(tmp_path: Path) -> None:
    """The copy itself (what runs if a file turns into a FIFO after the checks) never blocks."""
    fifo = tmp_path / "late.safetensors"
    os.mkfifo(fifo)
    done: list[BaseException] = []

    def copy() -> None:
        try:
            copy_file(fifo, tmp_path / "out", MB)
        except BaseException as exc:
            done.append(exc)

    worker = threading.Thread(target=copy, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "opening a FIFO blocked"
    assert isinstance(done[0], UnsafeContentError) and "named pipe" in str(done[0])


@pytest.mark.parametrize("source", ["/dev/zero", "/etc/passwd", "/etc/no-such-file"])
def test_sources_outside_the_install_roots_reveal_nothing(daemon: Daemon, source: str) -> None:
    with daemon.client() as c:
        answer = c.post("/api/v1/models/install", json={"source": source})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    # The same words whether the file exists or not: no probing the disk through installs.
    assert "outside the folders local installs may read" in detail
    assert "does not exist" not in detail and "device" not in detail


def test_a_device_file_inside_the_roots_is_refused(daemon: Daemon, sources: Path) -> None:
    link = sources / "zero.safetensors"
    link.symlink_to("/dev/zero")  # resolves outside the roots
    with daemon.client() as c:
        answer = c.post("/api/v1/models/install", json={"source": str(link)})
    assert answer.status_code == 422
    assert "/dev/zero" not in answer.json()["detail"]


def _zip_bomb(size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("model/model_index.json", "{}")
        with zf.open("model/unet/model.onnx", "w", force_zip64=True) as member:
            chunk = bytes(MB)
            for _ in range(size // MB):
                member.write(chunk)
    return buf.getvalue()


def _largest_file(root: Path) -> int:
    """The largest file under root, tolerating folders the daemon removes while we walk."""
    biggest = 0
    for folder, _dirs, files in os.walk(root):  # os.walk ignores folders that vanish
        for name in files:
            try:
                biggest = max(biggest, (Path(folder) / name).stat().st_size)
            except FileNotFoundError:
                continue
    return biggest


def test_a_zip_bomb_is_refused_before_it_fills_the_disk(daemon: Daemon, hub: FakeHub) -> None:
    bomb = _zip_bomb(300 * MB)
    assert len(bomb) < 400_000  # about 306 KB that unpacks to 300 MB
    hub.files["bomb.zip"] = bomb
    staging = daemon.data_dir / "temp" / "installs"
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json={"source": f"{hub.url}/files/bomb.zip"})
        assert started.status_code == 202, started.text
        install_id = started.json()["id"]
        biggest = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            body = c.get(f"/api/v1/models/installs/{install_id}").json()
            biggest = max(biggest, _largest_file(staging))
            if body["status"] not in ("queued", "running"):
                break
            time.sleep(0.05)
    assert body["status"] == "failed"
    assert "compression" in body["error"]
    assert biggest < 10 * MB  # the member was never unpacked
    assert not (staging / install_id).exists()


@pytest.mark.parametrize("protocol", range(6))
def test_a_pickle_of_any_protocol_in_a_model_folder_is_refused(
    daemon: Daemon, sources: Path, protocol: int
) -> None:
    folder = sources / f"pickled-{protocol}"
    shutil.copytree(TINY / "sd-tiny", folder)
    (folder / "unet" / "extra.bin").write_bytes(pickle.dumps({"w": [1, 2]}, protocol=protocol))
    with daemon.client() as c:
        started = c.post(
            "/api/v1/models/install", json={"source": str(folder), "id": f"pickled-{protocol}"}
        )
        assert started.status_code == 202, started.text
        done = wait_install(c, started.json()["id"], {"completed", "failed", "cancelled"})
        assert done["status"] == "failed", done
        assert "unet/extra.bin" in done["error"] and "pickle" in done["error"]
        assert c.get(f"/api/v1/models/pickled-{protocol}").status_code == 404


def test_a_clean_folder_in_the_roots_still_installs(daemon: Daemon, sources: Path) -> None:
    folder = sources / "clean"
    shutil.copytree(TINY / "sd-tiny", folder)
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json={"source": str(folder)})
        assert started.status_code == 202, started.text
        done = wait_install(c, started.json()["id"], {"completed", "failed", "cancelled"})
    assert done["status"] == "completed", done


def _cache_snapshot(root: Path, model: Path) -> Path:
    """``model`` laid out as the Hugging Face cache keeps a download: every file of the
    snapshot a relative link into ``blobs/``, named by its content's hash."""
    blobs = root / "blobs"
    snapshot = root / "snapshots" / "0123abcd"
    blobs.mkdir(parents=True)
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = blobs / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / path.relative_to(model)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def test_a_hugging_face_cache_snapshot_installs_as_the_files_its_links_name(
    daemon: Daemon, sources: Path
) -> None:
    snapshot = _cache_snapshot(sources / "models--someone--sd-tiny", TINY / "sd-tiny")
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json={"source": str(snapshot), "id": "cached"})
        assert started.status_code == 202, started.text
        done = wait_install(c, started.json()["id"], {"completed", "failed", "cancelled"})
        assert done["status"] == "completed", done
        installed = daemon.local_path(c.get("/api/v1/models/cached").json()["path"])
    # The installed copy holds the content, under the snapshot's names, and no links.
    names = sorted(p.relative_to(installed).as_posix() for p in installed.rglob("*"))
    assert not [p for p in installed.rglob("*") if p.is_symlink()]
    assert (installed / "tokenizer" / "vocab.json").read_bytes() == (
        TINY / "sd-tiny" / "tokenizer" / "vocab.json"
    ).read_bytes()
    assert "unet/model.onnx" in names


def test_a_linked_single_file_keeps_the_name_it_was_given(daemon: Daemon, sources: Path) -> None:
    lora = REPO_LORA.read_bytes()
    blob = sources / "lora-blob-4f2a9c"  # a cache blob: named by hash, no suffix
    blob.write_bytes(lora)
    link = sources / "linked-lora.safetensors"
    link.symlink_to(blob.name)
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json={"source": str(link)})
        assert started.status_code == 202, started.text
        done = wait_install(c, started.json()["id"], {"completed", "failed", "cancelled"})
        assert done["status"] == "completed", done
        model = c.get(f"/api/v1/models/{done['model_id']}").json()
    assert done["model_id"] == "linked-lora"
    assert model["type"] == "lora"
    assert Path(model["path"]).name == "linked-lora.safetensors"


@pytest.mark.parametrize("kind", ["outside", "folder", "fifo", "broken"])
def test_links_a_model_folder_may_not_follow(
    daemon: Daemon, sources: Path, tmp_path: Path, kind: str
) -> None:
    folder = sources / f"bad-link-{kind}"
    shutil.copytree(TINY / "sd-tiny", folder)
    vocab = folder / "tokenizer" / "vocab.json"
    secret = tmp_path / "secret.json"  # outside the install roots
    secret.write_text("{}")
    vocab.unlink()
    if kind == "outside":
        vocab.symlink_to(secret)
    elif kind == "folder":
        vocab.symlink_to(folder / "unet")
    elif kind == "fifo":
        os.mkfifo(sources / f"pipe-{kind}")
        vocab.symlink_to(sources / f"pipe-{kind}")
    else:
        vocab.symlink_to(sources / "no-such-blob")
    with daemon.client() as c:
        answer = c.post("/api/v1/models/install", json={"source": str(folder)})
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["errors"][0]["field"] == "source"
        assert body["detail"].startswith("source: tokenizer/vocab.json: a symbolic link")
        assert str(tmp_path) not in body["detail"]  # where it points is not told
        assert c.get(f"/api/v1/models/bad-link-{kind}").status_code == 404


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "-1"])
def test_keep_alive_must_be_a_finite_bounded_number(daemon: Daemon, value: str) -> None:
    with daemon.client() as c:
        answer = c.post(f"/api/v1/models/sd-tiny/load?keep_alive={value}")
        assert answer.status_code in (400, 422), answer.text
        assert "keep_alive" in answer.text
        assert c.get("/api/v1/models/loaded").status_code == 200


class StalledServer:
    """Answers any GET with headers promising a big body, then sends nothing, ever."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.requests: list[str] = []  # the method of each request
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.requests.append(conn.recv(65536).split(b" ", 1)[0].decode())
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n"
            )
            self.held.append(conn)

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module")
def stalled() -> Iterator[StalledServer]:
    server = StalledServer()
    yield server
    server.close()


def test_cancel_ends_an_install_stuck_in_a_read(daemon: Daemon, stalled: StalledServer) -> None:
    with daemon.client() as c:
        started = c.post(
            "/api/v1/models/install", json={"source": f"{stalled.url}/model.safetensors"}
        )
        assert started.status_code == 202, started.text
        install_id = started.json()["id"]
        wait_install(c, install_id, {"running"})
        deadline = time.monotonic() + 30
        while "GET" not in stalled.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "GET" in stalled.requests, "the install never started its download"
        time.sleep(0.5)  # the download thread is now blocked reading a body that never comes
        cancelled = c.post(f"/api/v1/models/installs/{install_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert c.get("/api/v1/health").status_code == 200


def test_the_daemon_stops_on_sigterm_after_all_of_it(daemon: Daemon) -> None:
    daemon.wait_worker_ready()
    with daemon.client() as c:
        assert c.post("/api/v1/models/sd-tiny/load?keep_alive=600").status_code == 200
        assert c.get("/api/v1/models/loaded").status_code == 200
    # The stalled download's thread is still blocked in its read: SIGTERM must not wait for it.
    assert daemon.stop(timeout=25) == 0
