"""What the head daemon and a Ray worker actor say besides the local worker protocol.

The actor speaks the same ``ToWorker``/``FromWorker`` messages as a local worker process; these
add what a worker on another machine needs: the files a job reads (content-addressed, fetched
from the head when missing) and the images it made (written by the head, not the node).
"""

from __future__ import annotations

import msgspec

from impasto.worker.protocol import (
    FromWorker,
    JobDone,
    LoadModel,
    RunJob,
    ToWorker,
)

CHUNK = 8 * 1024 * 1024  # bytes per transfer call: a model streams, never one huge object


class FileEntry(msgspec.Struct, frozen=True):
    """One file a job reads: its place under the node's models root, size and sha256."""

    path: str
    size: int
    sha256: str


class Manifest(msgspec.Struct, frozen=True):
    """The files of one model (``key`` names its root on the node) and a job's other files.

    ``model_dir`` is the head's folder of the model, so the node can report what it holds in
    the head's terms and the head can unload it by that name.
    """

    key: str
    model_dir: str
    files: list[FileEntry]


class ClusterJob(msgspec.Struct, tag="cluster-run"):
    """A ``RunJob`` with the head's paths, and the files its node must hold to run it."""

    run: RunJob
    manifest: Manifest


class ClusterLoad(msgspec.Struct, tag="cluster-load"):
    """A ``LoadModel`` with the head's path, and the model's files."""

    load: LoadModel
    manifest: Manifest


class NeedBlobs(msgspec.Struct, tag="need-blobs"):
    """The node lacks these files (by sha256): the head streams them with ``put_chunk``."""

    sha256: list[str]


class Outputs(msgspec.Struct, tag="outputs"):
    """A job's ``JobDone`` and its PNG files' bytes, in the order of ``done.results``."""

    done: JobDone
    images: list[bytes]


ToActor = ToWorker | ClusterJob | ClusterLoad
FromActor = FromWorker | NeedBlobs | Outputs

_encoder = msgspec.msgpack.Encoder()
_to_actor = msgspec.msgpack.Decoder(ToActor)
_from_actor = msgspec.msgpack.Decoder(FromActor)


def encode(message: ToActor | FromActor) -> bytes:
    return _encoder.encode(message)


def decode_to_actor(body: bytes) -> ToActor:
    return _to_actor.decode(body)


def decode_from_actor(body: bytes) -> FromActor:
    return _from_actor.decode(body)
