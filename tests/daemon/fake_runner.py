"""The real job runner for supervisor tests whose fake workers speak the frame protocol."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from impasto.services.runner import JobRunner, RunnerOptions
from impasto.worker.protocol import LoadModel, RunJob


class StartedRunner(JobRunner):
    """The real runner on ``store`` and ``bus``; the fake worker ignores the job it is sent,
    and ``started`` is set once it says it started one."""

    def __init__(self, store: Any, bus: Any, output_dir: Path) -> None:
        options = RunnerOptions(output_dir, output_dir, 3, 0, 60.0)
        super().__init__(store, bus, catalog=None, options=options)  # type: ignore[arg-type]
        self.started = asyncio.Event()

    def run_message(self, job: Any) -> RunJob:
        return LoadModel(model_dir="unused")  # type: ignore[return-value]

    def on_started(self, job_id: str, message: Any) -> None:
        super().on_started(job_id, message)
        self.started.set()
