"""What /health says of a cluster it cannot use, and how a node's worker that cannot start, or
refuses a message, ends: said in one line, never a job left waiting. Fast: no Ray cluster."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from impasto.settings import Settings
from impasto.worker.ray.cache import BlobCache, FetchError
from impasto.worker.ray.messages import Deliver, Ended, NodeInfo, encode
from tests.cluster.raycluster import ENV, require_ray
from tests.harness import Daemon, free_port

pytestmark = pytest.mark.timeout(60)


def _problem(daemon: Daemon, wanted: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    problem = ""
    with daemon.client() as client:
        while wanted not in problem:
            assert time.monotonic() < deadline, f"/health said {problem!r}, not {wanted!r}"
            time.sleep(0.3)
            problem = client.get("/api/v1/health").json().get("problem") or ""
    return problem


def test_an_address_where_no_cluster_answers_shows_in_health_while_ray_tries(
    tmp_path: Path,
) -> None:
    """Ray tries an unreachable GCS for minutes before it gives up: /health says so meanwhile."""
    require_ray()
    address = f"127.0.0.1:{free_port()}"
    daemon = Daemon(tmp_path / "daemon", cluster=address)
    env = daemon.env()
    daemon.env = lambda: {**env, **ENV}  # type: ignore[method-assign]
    try:
        daemon.start()
        problem = _problem(daemon, "cannot connect to the Ray cluster", timeout=25)
        assert f"at {address!r} (still trying)" in problem and "ray-bridge.log" in problem
        with daemon.client() as client:
            assert client.get("/api/v1/health").json()["status"] == "error"
        # A bridge still connecting has nothing to shut down: the daemon does not wait on it.
        started = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - started < 6
    finally:
        daemon.stop()


def test_a_ray_client_address_is_refused_with_what_to_do_instead(tmp_path: Path) -> None:
    """Ray Client has no streaming calls, which carry every worker's messages: no worker could
    ever start through it, so the daemon refuses the setting before it starts."""
    refused = Daemon(tmp_path / "daemon", cluster="ray://127.0.0.1:10001").refused()
    assert refused.returncode == 2, refused.stderr
    assert "Ray Client (ray://) cannot carry" in refused.stderr
    assert "cluster = 'auto'" in refused.stderr and "ray start --address" in refused.stderr


def _supervisor(cpu_workers: int = 1) -> Any:
    from impasto.worker.ray.supervisor import RaySupervisor

    settings = Settings(cluster="auto", cluster_cpu_workers=cpu_workers)
    return RaySupervisor(None, settings, Path("/nonexistent"))


def test_a_cluster_with_no_place_for_a_worker_says_so() -> None:
    """A head started with --num-cpus=0 and no node yet, or GPU-only with CPU nodes: no job
    can run, and /health says why instead of ok."""
    require_ray()
    supervisor = _supervisor(cpu_workers=0)
    nodes = [NodeInfo("head", "10.0.0.1", 0, 0.0), NodeInfo("cpu-node", "10.0.0.2", 0, 8.0)]
    supervisor._place(nodes)
    problem = supervisor.problem or ""
    assert "none of the Ray cluster's 2 node(s) has a GPU" in problem, problem
    assert "cluster_cpu_workers = 0" in problem
    supervisor._place([])  # the bridge is gone: its own problem says so
    assert supervisor.problem is None


def test_the_start_failures_of_a_node_that_left_go_with_it() -> None:
    """/health speaks of live nodes: a broken node's problem ends when the node leaves."""
    require_ray()
    from impasto.worker.ray.handle import NodeSlot

    supervisor = _supervisor()
    slot = NodeSlot("gone", "10.0.0.9", 0, False, 7)
    supervisor._slots[slot.key] = slot
    supervisor._start_failures[7] = 3
    supervisor._problems[7] = "a worker cannot start (3 tries in a row, ...)"
    supervisor._place([])  # the node list without it
    assert supervisor.problem is None and 7 not in supervisor._start_failures


def test_a_node_with_another_impasto_refuses_to_start_its_worker() -> None:
    """The messages of two versions may differ: the node says which it has, and what to do."""
    from impasto import __version__
    from impasto.worker.ray.actor import WorkerActor

    with pytest.raises(RuntimeError) as refused:
        WorkerActor("cpu", False, 0, head_version="0.0.0-other")
    assert str(refused.value) == (
        f"Impasto {__version__} is installed on this node, the head daemon runs 0.0.0-other: "
        "pip install 'impasto[cluster]==0.0.0-other' on the node"
    )


class _InitFailed(Exception):
    """What Ray raises for an actor whose __init__ raised: a header, the traceback, the error."""

    actor_init_failed = True


def test_why_a_worker_failed_to_start_is_the_error_it_raised_not_rays_header() -> None:
    require_ray()
    from impasto.worker.ray.bridge import reason

    report = _InitFailed(
        "The actor died because of an error raised in its creation task, "
        "\x1b[36mray::WorkerActor.__init__()\x1b[39m (pid=1, ip=10.0.0.7)\n"
        '  File "actor.py", line 9, in __init__\n'
        "ModuleNotFoundError: No module named 'impasto'\n"
    )
    assert reason(report) == (
        "the worker failed to start: ModuleNotFoundError: No module named 'impasto'"
    )
    assert reason(RuntimeError("\x1b[31mred\x1b[0m\nmore")) == "red"


class _Out:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)


class _Call:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def options(self, **_: Any) -> _Call:
        return self

    def remote(self, *_: Any) -> Any:
        raise self.error


def test_an_actor_call_that_fails_outside_ray_still_ends_the_worker() -> None:
    """Not only Ray's own errors end a worker's stream: any other leaves the daemon waiting
    on a worker that never comes (Ray Client's refusal of streaming calls was one)."""
    require_ray()
    from impasto.worker.ray.bridge import Bridge

    async def run() -> list[Any]:
        out = _Out()
        bridge = Bridge(out)
        actor = type("Actor", (), {"messages": _Call(RuntimeError("no streaming here"))})()
        bridge.actors["1"] = actor
        bridge.feeds["1"] = asyncio.Queue()
        await bridge._stream("1", actor)
        return out.sent

    assert asyncio.run(run()) == [Ended("1", "no streaming here")]


def _raised_in_the_actor() -> Exception:
    """What Ray raises for a call the actor raised on: RayTaskError, the traceback inside."""
    from ray.exceptions import RayTaskError

    traceback = "Traceback (most recent call last):\nValueError: unknown tag 'cluster-x'"
    error = ValueError("unknown tag 'cluster-x'")
    return RayTaskError("WorkerActor.deliver", traceback, error).as_instanceof_cause()


@pytest.mark.parametrize("raised", ["in the actor", "in the call"])
def test_an_actor_that_refuses_a_message_is_ended_not_left_with_the_job(raised: str) -> None:
    """A delivery the actor raised on was dropped, so its job waited forever: now the actor
    goes, with the reason, and the daemon requeues the job."""
    require_ray()
    import impasto.worker.ray.bridge as bridge_module

    error = _raised_in_the_actor() if raised == "in the actor" else ValueError("unknown tag")
    killed: list[Any] = []

    async def run() -> dict[str, str]:
        bridge = bridge_module.Bridge(_Out())
        actor = type("Actor", (), {"deliver": _Call(error)})()
        feed: asyncio.Queue[Any] = asyncio.Queue()
        feed.put_nowait(Deliver("1", b"job"))
        await asyncio.wait_for(bridge._feed("1", actor, feed), 5)
        return bridge.refused

    original = bridge_module.ray.kill
    bridge_module.ray.kill = lambda actor, **_: killed.append(actor)
    try:
        refused = asyncio.run(run())
    finally:
        bridge_module.ray.kill = original
    assert len(killed) == 1
    assert refused["1"].startswith("it refused a message: ") and "unknown tag" in refused["1"]


def test_a_call_to_a_lost_actor_is_left_to_its_stream() -> None:
    """A node that died fails calls too: its stream's end says why, no refusal is made up."""
    require_ray()
    from ray.exceptions import ActorDiedError

    from impasto.worker.ray.bridge import Bridge

    async def run() -> dict[str, str]:
        bridge = Bridge(_Out())
        actor = type("Actor", (), {"deliver": _Call(ActorDiedError())})()
        feed: asyncio.Queue[Any] = asyncio.Queue()
        feed.put_nowait(Deliver("1", b"job"))
        feed.put_nowait(Deliver("1", b""))
        await asyncio.wait_for(bridge._feed("1", actor, feed), 5)
        return bridge.refused

    assert asyncio.run(run()) == {}


def test_a_file_the_node_cannot_write_fails_the_job_with_why(tmp_path: Path) -> None:
    """A full disk on the node: the waiting job fails with the reason, not after a minute's
    timeout, and the rest of the file's chunks do not replace the reason."""
    cache = BlobCache(tmp_path, limit=10**6)
    data = b"0123456789" * 3
    digest = hashlib.sha256(data).hexdigest()
    cache.put_chunk(digest, 0, data[:10], False, "")
    part = next(cache.blobs.glob(".*.part"))
    part.unlink()
    part.mkdir()  # the next write fails as a full disk would: an OSError
    cache.put_chunk(digest, 10, data[10:20], False, "")
    cache.put_chunk(digest, 20, data[20:], True, "")
    started = time.monotonic()
    with pytest.raises(FetchError, match=f"cannot write {digest[:12]}"):
        cache.wait([digest], timeout=5)
    assert time.monotonic() - started < 1
    part.rmdir()
    cache.put_chunk(digest, 0, data, True, "")  # sent again: the node takes it
    cache.wait([digest], timeout=1)
    assert cache.blob(digest).read_bytes() == data


def test_a_nodes_answer_to_a_load_names_the_folder_the_head_asked_for() -> None:
    """POST /models/{id}/load waits for each worker's answer: a node's, in its own folders,
    must come back in the head's terms, with its error, or the load waits to its timeout."""
    from impasto.worker.protocol import ModelsLoaded
    from impasto.worker.ray.actor import ActorChannel
    from impasto.worker.ray.messages import decode_from_actor

    channel = ActorChannel()
    node, head = "/cache/roots/k/tiny", "/data/models/tiny"
    channel.head_dirs[node] = head
    loaded = [{"model_dir": node, "expires_at": 1.0}]
    channel.send(ModelsLoaded(loaded=loaded, load_of=node, load_error="MemoryError: x"))
    assert decode_from_actor(channel.outbox.get_nowait()) == ModelsLoaded(
        loaded=[{"model_dir": head, "expires_at": 1.0}], load_of=head, load_error="MemoryError: x"
    )


def test_a_load_waiting_on_a_node_that_is_lost_gets_why() -> None:
    require_ray()
    from impasto.worker.protocol import ModelsLoaded
    from impasto.worker.ray.handle import ActorProcess, NodeSlot, RayWorkerHandle

    supervisor = _supervisor()

    async def run() -> tuple[str, str]:
        handle = RayWorkerHandle(
            id="w",
            device_id=0,
            process=ActorProcess(supervisor, "1"),
            slot=NodeSlot("n", "10.0.0.7", 0, False, 0),
            owner=supervisor,
        )
        supervisor._actors["1"] = handle
        answered = handle.expect_load("/data/models/a")
        await supervisor._on_actor_message(
            handle, encode(ModelsLoaded(loaded=[], load_of="/data/models/a"))
        )
        waiting = handle.expect_load("/data/models/b")
        handle.lost = "the node left the cluster"
        supervisor._end(handle)
        return await asyncio.wait_for(answered, 1), await asyncio.wait_for(waiting, 1)

    loaded, lost = asyncio.run(run())
    assert loaded == ""
    assert lost == (
        "the worker exited while loading it "
        "(worker on Ray node 10.0.0.7 lost (the node left the cluster))"
    )
