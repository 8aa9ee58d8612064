"""Two first requests with one Idempotency-Key, racing: the lookup before the insert finds
nothing for either, so the database's unique index settles it, and the loser is answered by
what it sent, not by the winner's job."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from litestar.testing import TestClient
from PIL import Image

from impasto.services.container import Services

TINY = {"width": 64, "height": 64, "steps": 2}
KEY = {"Idempotency-Key": "raced"}


def _inline_picture(colour: str) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


WINNER = {"prompt": "winner", **TINY, "init_image": _inline_picture("red")}


@pytest.fixture
def raced(api: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The winner's job, queued; every later lookup of its key misses once, as a request's
    lookup does when it ran before the winner's insert."""
    winner = api.post("/api/v1/generate", json=WINNER, headers=KEY)
    assert winner.status_code == 202, winner.text
    store = services.jobs.store
    lookup = store.by_idempotency_key
    missed: set[int] = set()

    def late_lookup(key: str) -> Any:
        if not missed:
            missed.add(1)
            return None
        return lookup(key)

    monkeypatch.setattr(store, "by_idempotency_key", late_lookup)
    return dict(winner.json())


def test_the_loser_with_another_body_gets_the_422_and_leaves_no_pictures(
    api: TestClient, services: Services, raced: dict
) -> None:
    before = set(services.uploads.folder.glob("*"))
    body = {**WINNER, "init_image": _inline_picture("blue")}
    answer = api.post("/api/v1/generate", json=body, headers=KEY)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "Idempotency-Key"
    assert raced["id"] in answer.json()["detail"]
    assert set(services.uploads.folder.glob("*")) == before
    assert services.jobs.store.count_queued() == 1


def test_the_loser_with_the_same_body_gets_the_winners_job(
    api: TestClient, services: Services, raced: dict
) -> None:
    before = set(services.uploads.folder.glob("*"))
    answer = api.post("/api/v1/generate", json=WINNER, headers=KEY)
    assert answer.status_code == 200, answer.text
    assert set(services.uploads.folder.glob("*")) == before  # its copy of the picture went
    assert answer.json()["id"] == raced["id"]
    assert services.jobs.store.count_queued() == 1
