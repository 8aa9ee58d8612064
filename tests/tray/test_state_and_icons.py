"""Snapshots from the daemon's queue, their words, and one distinct icon per state."""

from __future__ import annotations

import numpy as np
import pytest

from impasto.client.types import JobStatus, QueueState
from impasto_tray.icons import COLOURS, render
from impasto_tray.state import DaemonState, Snapshot, snapshot_from_queue


def job(status: str, step: int = 0, total: int = 0) -> JobStatus:
    return JobStatus(id=f"job-{status}-{step}", status=status, current_step=step, total_steps=total)


def test_a_processing_job_means_generating_with_its_progress() -> None:
    queue = QueueState(paused=False, items=[job("processing", 12, 20), job("queued")])
    snapshot = snapshot_from_queue(queue, owned=True)
    assert snapshot.state is DaemonState.GENERATING
    assert snapshot.tooltip == "Impasto: Generating 12/20 (1 queued)"
    assert snapshot.owned and snapshot.running


def test_an_empty_queue_is_idle_and_a_paused_one_says_so() -> None:
    assert snapshot_from_queue(QueueState(paused=False), owned=False).status_line == "Idle"
    paused = snapshot_from_queue(QueueState(paused=True, items=[job("queued")]), owned=False)
    assert paused.state is DaemonState.PAUSED
    assert paused.status_line == "Queue paused (1 queued)"


def test_stopped_and_error_lines() -> None:
    assert not Snapshot(DaemonState.STOPPED).running
    assert Snapshot(DaemonState.STOPPED).status_line == "Daemon stopped"
    assert Snapshot(DaemonState.ERROR, message="boom").status_line == "Error: boom"


@pytest.mark.parametrize("state", list(DaemonState))
def test_each_state_has_its_own_colour(state: DaemonState) -> None:
    image = render(Snapshot(state, step=1, total=2))
    assert image.size == (64, 64) and image.mode == "RGBA"
    others = {s: render(Snapshot(s, step=1, total=2)).tobytes() for s in DaemonState if s != state}
    assert image.tobytes() not in others.values()
    pixels = np.asarray(image)
    opaque = pixels[pixels[..., 3] == 255][:, :3]
    assert (opaque == COLOURS[state]).all(axis=1).any()


def test_the_generating_icon_fills_as_steps_advance() -> None:
    def white(step: int) -> int:
        image = render(Snapshot(DaemonState.GENERATING, step=step, total=20))
        return int((np.asarray(image) == 255).all(axis=2).sum())

    assert white(0) < white(5) < white(10) < white(20)


def test_the_stopped_icon_is_hollow() -> None:
    image = render(Snapshot(DaemonState.STOPPED))
    assert image.getpixel((32, 32))[3] == 0  # type: ignore[index]


@pytest.mark.parametrize("state", list(DaemonState))
def test_every_tooltip_is_latin1_for_the_x11_window_name(state: DaemonState) -> None:
    # pystray's X backend stores the tooltip as a STRING property, which is Latin-1.
    Snapshot(state, step=3, total=20, queued=2, message="x").tooltip.encode("latin-1")
