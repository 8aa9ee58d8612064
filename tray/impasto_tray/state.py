"""What the tray shows: the daemon's state as one immutable snapshot, and its words."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from impasto.client.types import QueueState


class DaemonState(StrEnum):
    """The looks of the icon."""

    STOPPED = "stopped"
    STARTING = "starting"
    IDLE = "idle"
    GENERATING = "generating"
    PAUSED = "paused"
    ERROR = "error"


@dataclass(frozen=True)
class Snapshot:
    """One observation of the daemon, as the icon, tooltip and menu show it."""

    state: DaemonState
    step: int = 0
    total: int = 0
    queued: int = 0
    paused: bool = False
    # True when this tray started the daemon (and so stops it on Quit).
    owned: bool = False
    message: str = ""
    # An ERROR from a daemon that answers but cannot run jobs (its health names a problem).
    answering: bool = False

    @property
    def running(self) -> bool:
        """The daemon answers its API."""
        answers = (DaemonState.IDLE, DaemonState.GENERATING, DaemonState.PAUSED)
        return self.state in answers or self.answering

    @property
    def tooltip(self) -> str:
        """The icon's hover text, e.g. "Impasto: Generating 12/20 (3 queued)"."""
        return f"Impasto: {self.status_line}"

    @property
    def status_line(self) -> str:
        """The first, disabled line of the menu."""
        queued = f" ({self.queued} queued)" if self.queued else ""
        if self.state is DaemonState.GENERATING:
            progress = f" {self.step}/{self.total}" if self.total else ""
            return f"Generating{progress}{queued}"
        if self.state is DaemonState.PAUSED:
            return f"Queue paused{queued}"
        if self.state is DaemonState.IDLE:
            return "Idle" + queued
        if self.state is DaemonState.STARTING:
            return "Starting the daemon..."
        if self.state is DaemonState.ERROR:
            return f"Error: {self.message}" if self.message else "Error"
        return "Daemon stopped"


def snapshot_from_queue(queue: QueueState, *, owned: bool) -> Snapshot:
    """The snapshot of a daemon that answered GET /queue."""
    running = [job for job in queue.items if job.status == "processing"]
    waiting = sum(1 for job in queue.items if job.status == "queued")
    # The listing is one page; total counts every running and queued job.
    waiting = max(waiting, queue.total - len(running))
    if running:
        job = running[0]
        return Snapshot(
            DaemonState.GENERATING,
            step=job.current_step,
            total=job.total_steps,
            queued=waiting,
            paused=queue.paused,
            owned=owned,
        )
    state = DaemonState.PAUSED if queue.paused else DaemonState.IDLE
    return Snapshot(state, queued=waiting, paused=queue.paused, owned=owned)
