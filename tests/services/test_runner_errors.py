"""A failed job's error, as stored and published, names files by their place under the
daemon's folders (``<models>/loras/x``), never by the local path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from impasto.services.runner import JobRunner, RunnerOptions


class Recorder:
    """Stands in for the job store and the event bus: keeps what it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def mark_failed(self, job_id: str, error: str) -> None:
        self.calls.append(("failed", job_id, error))

    def publish(self, kind: str, job_id: str, data: dict[str, Any]) -> None:
        self.calls.append((kind, job_id, data))


def test_errors_carry_labels_instead_of_local_folders(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "models").mkdir(parents=True)
    data = tmp_path / "data"  # the settings name a link; messages may carry either spelling
    data.symlink_to(real)
    models = data / "models"
    options = RunnerOptions(
        output_dir=data / "outputs",
        uploads_dir=data / "uploads",
        max_attempts=1,
        preview_every=0,
        keep_alive=1,
        private_folders=((models, "<models>"), (data, "<data>")),
    )
    record = Recorder()
    runner = JobRunner(record, record, None, options, None)  # type: ignore[arg-type]
    runner.on_failed(
        "j1",
        f"ModelFolderError: {models}/x/unet/model.onnx: truncated; "
        f"see {real}/models/y and {data}/cache",
    )
    stored, published = record.calls
    expected = (
        "ModelFolderError: <models>/x/unet/model.onnx: truncated; see <models>/y and <data>/cache"
    )
    assert stored == ("failed", "j1", expected)
    assert published == ("failed", "j1", {"error": expected})
