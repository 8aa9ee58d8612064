"""/sdapi/v1/png-info with decompression bombs: text read without decoding a pixel."""

from __future__ import annotations

import base64
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import Daemon

PARAMETERS = "a red fox\nSteps: 4, Sampler: Euler a, CFG scale: 5, Seed: 7, Size: 64x64"


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def huge_png(size: int, *, rows: int | None = None, text_chunk: bytes | None = None) -> bytes:
    """An RGBA PNG of size x size black pixels (``rows`` of them stored) and text *after* them.

    Text after the image data is what made the old reader decode every pixel to find it.
    """
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    packer = zlib.compressobj(1)
    row = bytes(1 + 4 * size)
    parts = [packer.compress(row) for _ in range(size if rows is None else rows)]
    data = b"".join(parts) + packer.flush()
    text = text_chunk or _chunk(b"tEXt", b"parameters\0" + PARAMETERS.encode("latin-1"))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + text
        + _chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = Daemon(tmp_path_factory.mktemp("png"), workers=1).start()
    yield running
    running.stop()


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def png_info(client: httpx.Client, png: bytes) -> httpx.Response:
    body = {"image": "data:image/png;base64," + base64.b64encode(png).decode()}
    return client.post("/sdapi/v1/png-info", json=body, timeout=60)


def test_a_13000_pixel_png_costs_no_memory_and_no_stall(daemon: Daemon) -> None:
    png = huge_png(13000)  # 676 MB of pixels in about 3 MB
    assert daemon.process is not None
    before = peak_rss_kib(daemon.process.pid)
    answers: list[httpx.Response] = []

    def send() -> None:
        with daemon.client() as c:
            answers.append(png_info(c, png))

    sender = threading.Thread(target=send)
    with daemon.client() as c:
        sender.start()
        while sender.is_alive():  # the daemon keeps answering while it reads the upload
            assert c.get("/api/v1/health", timeout=10).status_code == 200
            time.sleep(0.01)
    sender.join()
    answer = answers[0]
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["info"] == PARAMETERS
    assert body["parameters"]["Steps"] == "4" and body["parameters"]["Seed"] == "7"
    grown_mb = (peak_rss_kib(daemon.process.pid) - before) / 1024
    assert grown_mb < 150, f"the daemon's peak memory grew by {grown_mb:.0f} MB"


def test_a_30000_pixel_png_is_answered_not_a_500(daemon: Daemon) -> None:
    with daemon.client() as c:
        answer = png_info(c, huge_png(30000, rows=10))
    assert answer.status_code == 200, answer.text
    assert answer.json()["info"] == PARAMETERS


def test_a_compressed_text_bomb_is_refused_naming_the_field(daemon: Daemon) -> None:
    bomb = zlib.compress(bytes(50 * 1024 * 1024), 9)  # 50 MB of text in about 50 KB
    text = _chunk(b"zTXt", b"parameters\0\0" + bomb)
    with daemon.client() as c:
        answer = png_info(c, huge_png(8, text_chunk=text))
    assert answer.status_code == 422, answer.text
    assert "image" in answer.text and "unpacks to more than" in answer.text


def test_text_before_and_after_the_pixels_and_itxt(daemon: Daemon) -> None:
    itxt = _chunk(b"iTXt", b"impasto\0\0\0en\0\0" + b'{"prompt": "renard"}')
    ztxt = _chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"compressed words"))
    with daemon.client() as c:
        answer = png_info(c, huge_png(8, text_chunk=itxt + ztxt))
    assert answer.status_code == 200, answer.text
    assert answer.json()["items"] == {
        "impasto": '{"prompt": "renard"}',
        "Comment": "compressed words",
    }
