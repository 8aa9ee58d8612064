"""Upscales run in the API process, so at most ``MAX_RUNNING`` run at once: one more waits for
a slot (on the event loop, holding no thread) and runs when one frees, or is a 429 with
Retry-After on every upscale route (native and A1111's extras) after SLOT_WAIT seconds, not
one more image held in memory."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from litestar.testing import TestClient
from PIL import Image

from impasto.services import upscalers
from impasto.services.upscalers import MAX_RUNNING, RETRY_AFTER


def _b64_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@contextmanager
def _slot() -> Iterator[None]:
    """One of the upscale slots, held for the block as a running upscale holds it."""
    assert upscalers._running.acquire(blocking=False), "no slot free"
    try:
        yield
    finally:
        upscalers._running.release()


ROUTES = [
    ("/api/v1/upscale", {"image": _b64_png(), "upscaler": "lanczos", "scale": 2}),
    ("/sdapi/v1/extra-single-image", {"image": _b64_png(), "upscaler_1": "Lanczos"}),
    (
        "/sdapi/v1/extra-batch-images",
        {"imageList": [{"data": _b64_png()}], "upscaler_1": "Lanczos"},
    ),
]


@pytest.mark.parametrize(("path", "body"), ROUTES, ids=["native", "extras", "extras-batch"])
def test_an_upscale_over_the_running_limit_is_refused_with_retry_after(
    api: TestClient, path: str, body: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upscalers, "SLOT_WAIT", 0.3)
    with ExitStack() as held:
        for _ in range(MAX_RUNNING):
            held.enter_context(_slot())
        refused = api.post(path, json=body)
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == str(RETRY_AFTER)
        assert f"{MAX_RUNNING} upscales are running" in refused.text
    # The slots freed, the same request runs; and a refused one took no slot.
    assert api.post(path, json=body).status_code == 200
    with ExitStack() as held:
        for _ in range(MAX_RUNNING):
            held.enter_context(_slot())


def test_an_upscale_waits_for_a_slot_and_runs_when_one_frees(api: TestClient) -> None:
    path, body = ROUTES[0]
    answers: list[int] = []
    with ExitStack() as held:
        for _ in range(MAX_RUNNING):
            held.enter_context(_slot())
        waiting = threading.Thread(
            target=lambda: answers.append(api.post(path, json=body).status_code)
        )
        waiting.start()
        time.sleep(0.5)
        assert answers == []  # still waiting, not refused
    waiting.join(10)
    assert answers == [200]
