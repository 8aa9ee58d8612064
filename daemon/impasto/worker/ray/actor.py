"""The worker as a Ray actor: the local worker's ``Worker`` behind a message stream.

A local worker reads frames on stdin and writes frames on stdout. The actor has the same
two ends: ``deliver`` (stdin) and ``messages``, a streaming generator (stdout), plus
``put_chunk`` for the files the head streams to it. Its own thread runs the message loop, as
``impasto worker`` does, so a ``CancelJob`` delivered mid-job reaches the running step.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import platformdirs

from impasto import __version__
from impasto.worker.files import Roots, model_folder
from impasto.worker.protocol import (
    CancelJob,
    FromWorker,
    JobDone,
    JobFailed,
    ModelsLoaded,
    Ready,
    Shutdown,
    UnloadModels,
)
from impasto.worker.ray.cache import BlobCache, FetchError
from impasto.worker.ray.messages import (
    ClusterJob,
    ClusterLoad,
    Manifest,
    NeedBlobs,
    Outputs,
    decode_to_actor,
    encode,
)

log = logging.getLogger("impasto.worker.ray")
CACHE_ENV = "IMPASTO_CLUSTER_CACHE"
# Seconds allowed per file transfer: a minute, plus a second per 50 MB (a slow network).
FETCH_BASE_S = 60.0
FETCH_BYTES_PER_S = 50 * 1024 * 1024


def cache_dir() -> Path:
    """This machine's model cache: ``IMPASTO_CLUSTER_CACHE``, else the user cache folder."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path(platformdirs.user_cache_dir("impasto", appauthor=False)) / "cluster"


class ActorChannel:
    """What ``Worker`` sends through: messages go to the outbox in the head's terms."""

    def __init__(self) -> None:
        self.outbox: queue.Queue[bytes | None] = queue.Queue()
        self.cancelled: set[str] = set()
        self.on_cancel: Any = None
        self.head_dirs: dict[str, str] = {}  # node model folder -> the head's folder of it
        self.loads: dict[str, str] = {}  # node model folder -> the head's LoadModel folder

    def send(self, message: FromWorker | NeedBlobs | Outputs) -> None:
        if isinstance(message, ModelsLoaded):
            loaded = [
                {**item, "model_dir": self.head_dirs.get(item["model_dir"], item["model_dir"])}
                for item in message.loaded
            ]
            # A load's answer names the folder the head asked for, as a local worker's does.
            load_of = self.loads.pop(message.load_of, "") or self.head_dirs.get(
                message.load_of, message.load_of
            )
            message = msgspec.structs.replace(message, loaded=loaded, load_of=load_of)
        elif isinstance(message, JobDone):
            # The head writes the images (same bytes, same metadata); the node keeps none.
            images = [Path(result["path"]).read_bytes() for result in message.results]
            message = Outputs(done=message, images=images)
        self.outbox.put(encode(message))

    def node_dir(self, head_dir: str | None) -> str | None:
        if head_dir is None:
            return None
        return next((n for n, h in self.head_dirs.items() if h == head_dir), head_dir)


class WorkerActor:
    """One inference worker on a Ray node (one per GPU, or per configured CPU slot)."""

    def __init__(
        self, provider: str, enable_tensorrt: bool, cache_size: int, head_version: str = ""
    ) -> None:
        if head_version and head_version != __version__:
            # The messages of two versions may differ: a worker must not half-understand jobs.
            raise RuntimeError(
                f"Impasto {__version__} is installed on this node, the head daemon runs "
                f"{head_version}: pip install 'impasto[cluster]=={head_version}' on the node"
            )
        from impasto.engine import select_providers
        from impasto.worker.main import Worker, describe_choice, load_plugins

        logging.basicConfig(level=logging.INFO, format="impasto worker: %(message)s")
        self.cache = BlobCache(cache_dir(), cache_size)
        self.channel = ActorChannel()
        self.inbox: queue.Queue[Any] = queue.Queue()
        # Ray gives the actor its GPU as the only visible one: device 0.
        choice = select_providers(
            None if provider == "auto" else provider, enable_tensorrt=enable_tensorrt, device_id=0
        )
        # ActorChannel has what Worker uses of a Channel: send, cancelled, on_cancel.
        plugins = load_plugins("", "")
        self.worker = Worker(self.channel, choice, plugins, self.cache.root / "ort")  # type: ignore[arg-type]
        self.channel.send(Ready(pid=os.getpid(), provider=describe_choice(choice)))
        threading.Thread(target=self._loop, name="impasto-worker", daemon=True).start()

    def messages(self) -> Iterator[bytes]:
        """Everything the worker says, in order, until it stops (the head iterates it)."""
        while True:
            body = self.channel.outbox.get()
            if body is None:
                return
            yield body

    def deliver(self, body: bytes) -> None:
        message = decode_to_actor(body)
        if isinstance(message, CancelJob):
            self.channel.cancelled.add(message.job_id)
            self.channel.on_cancel(message.job_id)
        else:
            if isinstance(message, Shutdown):
                self.channel.on_cancel(None)
            self.inbox.put(message)

    def put_chunk(self, sha256: str, offset: int, data: bytes, final: bool, error: str) -> None:
        self.cache.put_chunk(sha256, offset, data, final, error)

    def _loop(self) -> None:
        worker = self.worker
        while True:
            expiry = worker.next_expiry()
            timeout = None if expiry is None else max(0.0, expiry - time.time())
            try:
                message = self.inbox.get(timeout=timeout)
            except queue.Empty:
                worker.expire()
                continue
            try:
                if isinstance(message, Shutdown):
                    worker.unload_all()
                    return
                if isinstance(message, UnloadModels):
                    worker.unload(self.channel.node_dir(message.model_dir))
                elif isinstance(message, ClusterLoad):
                    self._preload(message)
                elif isinstance(message, ClusterJob):
                    self._run(message)
            except Exception:
                log.exception("handling %s failed", type(message).__name__)
            finally:
                if isinstance(message, Shutdown):
                    self.channel.outbox.put(None)

    def _prepare(self, manifest: Manifest) -> Path:
        """This node's models root for ``manifest``, fetching what it lacks from the head."""
        missing = self.cache.missing(manifest)
        if missing:
            size = sum(f.size for f in manifest.files if f.sha256 in missing)
            log.info("fetching %d file(s), %d bytes, from the head", len(missing), size)
            self.channel.send(NeedBlobs(sha256=missing))
            self.cache.wait(missing, FETCH_BASE_S + size / FETCH_BYTES_PER_S)
        root = self.cache.link(manifest)
        self.cache.evict(keep=manifest.key)
        return root

    def _model_dir(self, root: Path, manifest: Manifest, model_id: str) -> str:
        from impasto.resources import bundled_models_dir

        found = model_folder(Roots(root, bundled_models_dir()), model_id)
        node_dir = str(found or root / model_id)
        if manifest.model_dir:
            self.channel.head_dirs[node_dir] = manifest.model_dir
        return node_dir

    def _preload(self, message: ClusterLoad) -> None:
        head_dir = message.load.model_dir
        try:
            root = self._prepare(message.manifest)
        except (FetchError, OSError) as exc:
            log.error("cannot load %s: %s", head_dir, exc)
            why = f"the worker could not get the model's files from the head daemon: {exc}"
            self.worker.report_models(load_of=head_dir, load_error=why)
            return
        node_dir = self._model_dir(root, message.manifest, Path(head_dir).name)
        self.channel.loads[node_dir] = head_dir
        self.worker.preload(node_dir, message.load.keep_alive)

    def _run(self, message: ClusterJob) -> None:
        job_id = message.run.job_id
        try:
            root = self._prepare(message.manifest)
        except (FetchError, OSError) as exc:
            error = f"the worker could not get the job's files from the head daemon: {exc}"
            self.channel.send(JobFailed(job_id, error))
            return
        self._model_dir(root, message.manifest, message.run.plan.model)
        out = self.cache.job_dir(job_id)
        run = msgspec.structs.replace(
            message.run,
            models_dir=str(root),
            uploads_dir=str(root / "uploads"),
            output_dir=str(out),
        )
        try:
            self.worker.run(run)
        finally:
            shutil.rmtree(out, ignore_errors=True)
