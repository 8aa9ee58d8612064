"""One install's blocking work as the staging steps see it: the job, its progress, its result."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impasto.services.detect import Detected


class InstallError(Exception):
    """The install cannot complete; the message says why and what to do."""


@dataclass
class Progress:
    """Shared between the install thread (writer) and the event ticker (reader)."""

    stage: str = "queued"
    done: int = 0
    total: int = 0
    file: str = ""
    fetched: int = 0  # bytes on disk of the download, kept across stages
    expected: int = 0  # the download's total size where the source says it

    def start(self, stage: str, total: int = 0) -> None:
        self.stage, self.done, self.total, self.file = stage, 0, total, ""

    def add(self, count: int) -> None:
        self.done += count
        self.fetched += count


@dataclass
class StageJob:
    """Everything the blocking steps of one install need."""

    install_id: str
    model_id: str
    source: dict[str, Any]
    options: dict[str, Any]
    staging: Path
    models_dir: Path
    max_file_size: int
    hub_endpoint: str
    hub_token: str | None
    provider: str = ""  # the workers' execution provider, for the graph check
    # Where a local folder's symbolic links may lead (the install_roots setting; empty:
    # anywhere); None refuses every link.
    link_roots: tuple[Path, ...] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Progress = field(default_factory=Progress)
    warning: str = ""  # why the installed model cannot run here, when it cannot


@dataclass(frozen=True)
class Installed:
    """What landed in the models dir."""

    path: Path
    detected: Detected
    size: int
    hash: str
