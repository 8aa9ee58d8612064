"""An upscale runs in the request that asked for it: when its client goes away (a timeout, an
abort) it stops at its next model tile and frees its slot, through a real daemon (granian),
on the native route and A1111's extras alike."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from impasto.services.upscalers import MAX_RUNNING
from tests.harness import Daemon
from tests.sr_model import write_sr_model


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("upscale-cancel")
    write_sr_model(root / "data" / "models" / "upscalers" / "tiny-sr.onnx", scale=2)
    running = Daemon(root).start()
    yield running
    running.stop()


def _b64(size: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (20, 120, 220)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


BIG = _b64(1024)  # 8x with a 2x model: three passes over some 650 tiles, seconds of work
SMALL = _b64(16)
SLOW = {
    "/api/v1/upscale": {"image": BIG, "upscaler": "tiny-sr", "scale": 8},
    "/sdapi/v1/extra-single-image": {"image": BIG, "upscaler_1": "tiny-sr", "upscaling_resize": 8},
}


def _given_up(daemon: Daemon, path: str, answers: list[object]) -> None:
    """Send the slow upscale and go away after half a second."""
    with httpx.Client(base_url=daemon.url, headers=daemon.headers(), timeout=0.5) as client:
        try:
            answers.append(client.post(path, json=SLOW[path]).status_code)
        except httpx.TimeoutException:
            answers.append("gone")


@pytest.mark.parametrize("path", list(SLOW))
def test_an_upscale_whose_client_went_away_frees_its_slot(daemon: Daemon, path: str) -> None:
    quick = {"image": SMALL, "upscaler": "tiny-sr", "scale": 2}
    with httpx.Client(base_url=daemon.url, headers=daemon.headers(), timeout=60) as http:
        started = time.monotonic()
        assert http.post("/api/v1/upscale", json=SLOW["/api/v1/upscale"]).status_code == 200
        whole = time.monotonic() - started  # what one slow upscale takes on this machine
        answers: list[object] = []
        leaving = [
            threading.Thread(target=_given_up, args=(daemon, path, answers))
            for _ in range(MAX_RUNNING)
        ]
        for thread in leaving:
            thread.start()
        for thread in leaving:
            thread.join()
        assert answers == ["gone"] * MAX_RUNNING  # both took a slot and were given up
        gone = time.monotonic()
        while (answer := http.post("/api/v1/upscale", json=quick)).status_code == 429:
            assert time.monotonic() - gone < whole, "the slots stayed taken"
            time.sleep(0.05)
        assert answer.status_code == 200, answer.text
        assert time.monotonic() - gone < whole / 2, (time.monotonic() - gone, whole)
