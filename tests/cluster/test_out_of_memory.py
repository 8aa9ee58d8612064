"""A worker Ray stops because its node ran out of memory is reported as out of memory (the
daemon's own cgroup counts nothing on another machine), and its job is not retried."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cluster.raycluster import LocalRayCluster
from tests.harness import Daemon

pytestmark = pytest.mark.timeout(240)
# Ray's memory monitor checks every 100 ms and stops workers while the node uses more than 1%
# of its memory, which every machine does: each worker actor is stopped for memory.
STARVED = {"RAY_memory_monitor_refresh_ms": "100", "RAY_memory_usage_threshold": "0.01"}


def test_a_worker_ray_stops_for_memory_is_reported_as_out_of_memory(tmp_path: Path) -> None:
    cluster = LocalRayCluster(tmp_path / "cache", head_cpus=1, env=STARVED)
    daemon = Daemon(tmp_path / "daemon", cluster=cluster.address)
    try:
        daemon.start()
        deadline = time.monotonic() + 150
        problem = ""
        with daemon.client() as client:
            while "out of memory" not in problem:
                assert time.monotonic() < deadline, problem
                time.sleep(0.5)
                problem = client.get("/api/v1/health").json().get("problem") or ""
        assert "Ray's memory monitor stopped the worker on node 127.0.0.1" in problem, problem
    finally:
        daemon.stop()
        cluster.close()


def test_the_job_of_a_worker_ray_stopped_for_memory_fails_without_a_retry() -> None:
    from impasto.worker.ray.handle import RayWorkerHandle

    handle = RayWorkerHandle(id="w", device_id=0, process=None)  # type: ignore[arg-type]
    assert handle.memory_kill(None, None) == ""  # no cgroup counts: lost for another reason
    handle.lost, handle.out_of_memory = (
        "Task was killed due to the node running low on memory",
        True,
    )
    assert handle.memory_kill(None, None).startswith("out of memory: Ray's memory monitor")
