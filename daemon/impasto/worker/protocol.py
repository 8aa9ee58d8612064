"""Messages between the daemon and a worker: length-prefixed msgpack frames over stdin/stdout."""

from __future__ import annotations

import struct
from typing import IO, Any

import msgspec

from impasto.wire import ResolvedPlan

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


class RunJob(msgspec.Struct, tag="run"):
    """Generate one job's plan and write its images under ``output_dir``.

    The plan names the model, adapters and uploads; the worker looks their files up under
    ``models_dir`` (then the bundled models) and ``uploads_dir`` where it opens them
    (``impasto.worker.files``).
    """

    job_id: str
    plan: ResolvedPlan
    models_dir: str
    uploads_dir: str
    output_dir: str
    preview_every: int = 0
    keep_alive: float = 300.0
    # Active plugins and their config tables; the request's per-plugin options.
    plugins: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    plugin_options: dict[str, Any] = msgspec.field(default_factory=dict)


class CancelJob(msgspec.Struct, tag="cancel"):
    """Stop ``job_id`` before its next UNet call."""

    job_id: str


class UnloadModels(msgspec.Struct, tag="unload"):
    """Drop ``model_dir`` now, or every loaded model when it is None."""

    model_dir: str | None = None


class LoadModel(msgspec.Struct, tag="load"):
    """Load ``model_dir`` ahead of a job and keep it for ``keep_alive`` seconds."""

    model_dir: str
    keep_alive: float = 300.0


class Shutdown(msgspec.Struct, tag="shutdown"):
    """Finish or cancel the running job, then exit."""


class Ready(msgspec.Struct, tag="ready"):
    """The worker started; ``provider`` describes the execution provider it proved."""

    pid: int
    provider: dict[str, Any]


class Started(msgspec.Struct, tag="started"):
    """The job's model is loaded and sampling begins."""

    job_id: str
    total: int
    seeds: list[int]


class StepProgress(msgspec.Struct, tag="progress"):
    """One sampler step done; ``preview`` is a small JPEG when one was made."""

    job_id: str
    step: int
    total: int
    preview: bytes | None = None


class JobDone(msgspec.Struct, tag="done"):
    """The job's images are written; one dict per image (index, path, seed, width, height)."""

    job_id: str
    results: list[dict[str, Any]]
    warnings: list[str] = msgspec.field(default_factory=list)
    timings: dict[str, float] = msgspec.field(default_factory=dict)


class JobFailed(msgspec.Struct, tag="failed"):
    """The job failed for a reason retrying will not fix; ``field`` names a bad input."""

    job_id: str
    error: str
    field: str | None = None


class JobCancelled(msgspec.Struct, tag="cancelled"):
    """The job stopped because it was cancelled."""

    job_id: str


class ModelsLoaded(msgspec.Struct, tag="models"):
    """What the worker holds now and when each expires (unix seconds); after a LoadModel, the
    folder it asked for (``load_of``) and why it could not be loaded (empty when it was)."""

    loaded: list[dict[str, Any]]
    load_of: str = ""
    load_error: str = ""


ToWorker = RunJob | CancelJob | UnloadModels | LoadModel | Shutdown
FromWorker = Ready | Started | StepProgress | JobDone | JobFailed | JobCancelled | ModelsLoaded

_encoder = msgspec.msgpack.Encoder()
_to_worker = msgspec.msgpack.Decoder(ToWorker)
_from_worker = msgspec.msgpack.Decoder(FromWorker)


def encode_frame(message: ToWorker | FromWorker) -> bytes:
    """One message as a length-prefixed frame."""
    body = _encoder.encode(message)
    return HEADER.pack(len(body)) + body


def decode_to_worker(body: bytes) -> ToWorker:
    return _to_worker.decode(body)


def decode_from_worker(body: bytes) -> FromWorker:
    return _from_worker.decode(body)


def read_frame(stream: IO[bytes]) -> bytes | None:
    """Read one frame body from a blocking stream; None at end of stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes is over the {MAX_FRAME} byte limit")
    body = stream.read(size)
    if len(body) < size:
        return None
    return body
