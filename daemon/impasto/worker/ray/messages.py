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


# Between the daemon and its Ray bridge process (the Ray driver), over the bridge's pipes.


class NodeInfo(msgspec.Struct, frozen=True):
    """A live node of the cluster and what it offers."""

    node_id: str
    ip: str
    gpus: int
    cpus: float


class Spawn(msgspec.Struct, tag="spawn"):
    """Start worker actor ``key`` on ``node_id`` (a GPU of it, or one CPU)."""

    key: str
    node_id: str
    gpu: bool
    provider: str
    enable_tensorrt: bool
    cache_size: int
    version: str  # the head's Impasto: a node with another one refuses to start the worker


class Deliver(msgspec.Struct, tag="deliver"):
    """A ``ToActor`` message for actor ``key``; deliveries to one actor keep their order."""

    key: str
    body: bytes


class Chunk(msgspec.Struct, tag="chunk"):
    """Part of a file for actor ``key``'s node; ``error`` set: the head cannot send it."""

    key: str
    sha256: str
    offset: int
    data: bytes
    final: bool
    error: str = ""


class Kill(msgspec.Struct, tag="kill"):
    """End actor ``key`` now."""

    key: str


class Nodes(msgspec.Struct, tag="nodes"):
    """The live nodes, sent whenever the list changes."""

    nodes: list[NodeInfo]


class Out(msgspec.Struct, tag="out"):
    """A ``FromActor`` message of actor ``key``."""

    key: str
    body: bytes


class Acked(msgspec.Struct, tag="acked"):
    """Actor ``key`` took the chunk of ``sha256`` at ``offset``: the head sends the next."""

    key: str
    sha256: str
    offset: int


class Ended(msgspec.Struct, tag="ended"):
    """Actor ``key`` is gone; ``lost`` says why when it did not stop when asked, and
    ``out_of_memory`` whether Ray stopped it because its node ran out of memory."""

    key: str
    lost: str = ""
    out_of_memory: bool = False


ToBridge = Spawn | Deliver | Chunk | Kill
FromBridge = Nodes | Out | Acked | Ended

ToActor = ToWorker | ClusterJob | ClusterLoad
FromActor = FromWorker | NeedBlobs | Outputs

_encoder = msgspec.msgpack.Encoder()
_to_actor = msgspec.msgpack.Decoder(ToActor)
_from_actor = msgspec.msgpack.Decoder(FromActor)
_to_bridge = msgspec.msgpack.Decoder(ToBridge)
_from_bridge = msgspec.msgpack.Decoder(FromBridge)


def encode(message: ToActor | FromActor | ToBridge | FromBridge) -> bytes:
    return _encoder.encode(message)


def decode_to_actor(body: bytes) -> ToActor:
    return _to_actor.decode(body)


def decode_from_actor(body: bytes) -> FromActor:
    return _from_actor.decode(body)


def decode_to_bridge(body: bytes) -> ToBridge:
    return _to_bridge.decode(body)


def decode_from_bridge(body: bytes) -> FromBridge:
    return _from_bridge.decode(body)
