"""The worker's hold on models: one at a time, the old one closed before the next opens, and
what it reports about them (the seam the model manager's load/unload/keep-alive reads)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

import impasto.engine
import impasto.engine.sessions
from impasto.worker.main import Worker


class FakeChannel:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.cancelled: set[str] = set()
        self.on_cancel: Any = None

    def send(self, message: Any) -> None:
        self.sent.append(message)


class FakePipeline:
    open_now: ClassVar[list[str]] = []

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)
        self.opened_beside = list(FakePipeline.open_now)
        FakePipeline.open_now.append(self.folder)

    def close(self) -> None:
        FakePipeline.open_now.remove(self.folder)


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> tuple[Worker, FakeChannel, list[int]]:
    FakePipeline.open_now = []
    trims: list[int] = []
    monkeypatch.setattr(
        impasto.engine, "load_pipeline", lambda folder, *_a, **_k: FakePipeline(folder)
    )
    monkeypatch.setattr(impasto.engine.sessions, "return_freed_memory", lambda: trims.append(1))
    channel = FakeChannel()
    return Worker(channel, choice=None), channel, trims


def test_switching_models_closes_the_old_one_before_the_new_one_opens(
    worker: tuple[Worker, FakeChannel, list[int]],
) -> None:
    w, channel, trims = worker
    w.preload("/m/a", 60)
    w.preload("/m/b", 60)
    assert list(w.pipelines) == ["/m/b"]
    assert w.pipelines["/m/b"][0].opened_beside == []  # never two models at once
    assert FakePipeline.open_now == ["/m/b"]
    assert trims == [1]  # the memory of a went back when it was dropped
    assert [item["model_dir"] for item in channel.sent[-1].loaded] == ["/m/b"]


def test_expiry_and_unload_close_and_report(worker: tuple[Worker, FakeChannel, list[int]]) -> None:
    w, channel, trims = worker
    w.preload("/m/a", 0)
    w.expire()
    assert w.pipelines == {} and FakePipeline.open_now == []
    assert channel.sent[-1].loaded == [] and trims == [1]
    w.preload("/m/a", 60)
    w.unload("/m/other")  # not held: nothing to drop, what is held is reported
    assert channel.sent[-1].loaded[0]["model_dir"] == "/m/a" and trims == [1]
    w.unload("/m/a")
    assert channel.sent[-1].loaded == [] and FakePipeline.open_now == [] and trims == [1, 1]


def test_a_job_never_shortens_the_keep_alive_a_load_asked_for(
    worker: tuple[Worker, FakeChannel, list[int]],
) -> None:
    w, _channel, _trims = worker
    job: Any = object()  # a RunJob; _pipeline only tells loads from jobs by it
    w.preload("/m/a", 3600)
    w._pipeline("/m/a", 5, job)  # a job, under the daemon's keep_alive setting of 5 s
    assert w.pipelines["/m/a"][1] > time.time() + 3500
    w._pipeline("/m/b", 5, job)
    assert w.pipelines["/m/b"][1] < time.time() + 6
    w._pipeline("/m/b", 60, job)  # a longer setting does lengthen it
    assert w.pipelines["/m/b"][1] > time.time() + 55
    w.preload("/m/b", 0)  # a load says how long, shorter too
    assert w.pipelines["/m/b"][1] <= time.time()
