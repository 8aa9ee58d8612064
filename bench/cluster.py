"""Cluster benchmark: throughput with 1, 2 and 3 Ray worker nodes against one local worker,
and the per-job overhead Ray adds, measured in the same run on the same machine.

    python bench/cluster.py [--jobs 12] [--serial 20] [--nodes 3] [--steps 4]

The reference is a real daemon with one local worker process. Then a real Ray cluster on
127.0.0.1 (a head without CPUs and up to --nodes worker nodes of one CPU each) serves a daemon
started with ``--cluster``. For each setup:

- throughput: --jobs tiny jobs submitted at once, jobs per second from the first submit to
  the last completion (after one warm-up job per worker, so model loads are not counted);
- overhead (local and one node only): --serial jobs one after another; per job, the time the
  head saw it processing (started_at to completed_at in its SQLite queue) minus the time the
  worker spent loading, generating and writing (the job's own timings). The difference
  between the Ray and local medians is what Ray adds per job.

On a machine with fewer cores than nodes the nodes share the cores: throughput cannot scale.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.cluster.raycluster import LocalRayCluster
from tests.harness import Daemon, wait_status


def _job(steps: int, i: int) -> dict[str, Any]:
    return {"prompt": f"bench {i}", "width": 64, "height": 64, "steps": steps, "seed": i}


def wait_workers(daemon: Daemon, count: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([w for w in daemon.workers() if w["state"] in ("idle", "busy")]) >= count:
            return
        time.sleep(0.3)
    raise TimeoutError(f"{count} workers did not start: {daemon.workers()}")


def throughput(daemon: Daemon, jobs: int, steps: int, warm: int) -> float:
    with daemon.client() as client:
        warmups = [
            client.post("/api/v1/generate", json=_job(steps, 500 + i)).json() for i in range(warm)
        ]
        for job in warmups:
            wait_status(client, job["id"], {"completed"}, timeout=300)
        start = time.perf_counter()
        ids = [
            client.post("/api/v1/generate", json=_job(steps, i)).json()["id"] for i in range(jobs)
        ]
        for job_id in ids:
            wait_status(client, job_id, {"completed"}, timeout=600)
        return jobs / (time.perf_counter() - start)


def overheads(daemon: Daemon, count: int, steps: int) -> list[float]:
    """Per serial job: head-side processing time minus the worker's own timings (ms)."""
    ids = []
    with daemon.client() as client:
        for i in range(count):
            job = client.post("/api/v1/generate", json=_job(steps, 1000 + i)).json()
            wait_status(client, job["id"], {"completed"}, timeout=300)
            ids.append(job["id"])
    db = sqlite3.connect(f"file:{daemon.data_dir / 'impasto.db'}?mode=ro", uri=True)
    out = []
    for job_id in ids:
        started, completed = db.execute(
            "SELECT started_at, completed_at FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        data = db.execute(
            "SELECT data FROM events WHERE job_id = ? AND type = 'completed'", (job_id,)
        ).fetchone()[0]
        worker = sum(json.loads(data)["timings"].values())
        out.append((completed - started - worker) * 1000)
    db.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--serial", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    rows: list[tuple[str, float]] = []
    root = Path(tempfile.mkdtemp(prefix="impasto-bench-cluster-"))
    print(f"machine: {os.cpu_count()} cores; {args.jobs} jobs of 64x64, {args.steps} steps")

    local = Daemon(root / "local", workers=1)
    try:
        local.start()
        wait_workers(local, 1)
        rows.append(("local, 1 worker process", throughput(local, args.jobs, args.steps, 1)))
        print(rows[-1], flush=True)
        local_over = overheads(local, args.serial, args.steps)
        print("local overheads (ms):", [round(x, 1) for x in local_over], flush=True)
    finally:
        local.stop()

    cluster = LocalRayCluster(root / "node-cache")
    daemon = Daemon(root / "cluster", cluster=cluster.address)
    try:
        cluster.add_worker_node()
        daemon.start()
        wait_workers(daemon, 1)
        ray_over = overheads(daemon, args.serial, args.steps)
        print("Ray overheads (ms):", [round(x, 1) for x in ray_over], flush=True)
        for count in range(1, args.nodes + 1):
            if count > 1:
                cluster.add_worker_node()
                wait_workers(daemon, count)
            label = f"Ray, {count} worker node{'s' if count > 1 else ''}"
            rows.append((label, throughput(daemon, args.jobs, args.steps, count)))
            print(rows[-1], flush=True)
    finally:
        daemon.stop()
        cluster.close()

    reference = rows[0][1]
    print("\n| setup | jobs/s | vs local |")
    print("|---|---|---|")
    for label, rate in rows:
        print(f"| {label} | {rate:.2f} | {rate / reference:.2f}x |")
    local_ms, ray_ms = statistics.median(local_over), statistics.median(ray_over)
    print(f"\nper-job overhead outside the worker's own work, median of {args.serial} serial jobs:")
    print(f"  local worker: {local_ms:.1f} ms; Ray worker node: {ray_ms:.1f} ms")
    print(f"  added by Ray: {ray_ms - local_ms:.1f} ms (target < 30 ms)")


if __name__ == "__main__":
    main()
