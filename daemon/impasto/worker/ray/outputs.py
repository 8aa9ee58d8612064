"""The head's file I/O for remote workers: file chunks out, finished images in (atomically)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import msgspec

from impasto.formats.png import write_atomically
from impasto.worker.protocol import JobDone, RunJob
from impasto.worker.ray.messages import CHUNK, Outputs


def read_chunk(path: Path, offset: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read(CHUNK)


def write_outputs(run: RunJob | None, outputs: Outputs) -> JobDone:
    """Write a node's images where a local worker would have, atomically; the head's JobDone."""
    if run is None or run.job_id != outputs.done.job_id:
        raise RuntimeError(f"images of job {outputs.done.job_id} arrived for no running job")
    folder = Path(run.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for result, data in zip(outputs.done.results, outputs.images, strict=True):
        path = folder / Path(result["path"]).name
        write_atomically(path, _writer(data))
        results.append({**result, "path": str(path)})
    return msgspec.structs.replace(outputs.done, results=results)


def _writer(data: bytes) -> Callable[[BinaryIO], object]:
    return lambda file: file.write(data)
