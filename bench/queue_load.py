"""Queue benchmark: GET /queue and /health latency with 10,000 queued jobs, against the same
daemon's latency with an empty queue measured in the same run.

    python bench/queue_load.py [--jobs 10000] [--requests 500] [--hammer 2]

A real daemon (`impasto serve`, one worker, queue paused) first answers with an empty queue
(the reference); then --jobs jobs are queued straight into its SQLite file and the same reads
run again. /health is also measured while --hammer client processes read /queue back to back,
which is where a blocking /queue used to stall every other request. The old algorithm (every
active job, then one COUNT query per job for its position) is timed in-process on a file of
2,000 queued jobs for comparison: it grew with the square of the queue.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from impasto.store.db import open_database
from impasto.store.jobs import JobStore
from impasto.wire import ResolvedPlan
from tests.harness import Daemon


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def timed_gets(client: httpx.Client, path: str, requests: int) -> list[float]:
    out = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(path)
        out.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
    return out


def _hammer(url: str, stop_at: float) -> None:
    with httpx.Client(base_url=url, timeout=30.0) as c:
        while time.monotonic() < stop_at:
            c.get("/api/v1/queue")


def health_under_queue_load(daemon: Daemon, requests: int, hammer: int) -> list[float]:
    """/health latencies while ``hammer`` client processes read /queue without pause."""
    stop_at = time.monotonic() + 600
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(daemon.url, stop_at)) for _ in range(hammer)]
    for p in procs:
        p.start()
    time.sleep(2.0)
    try:
        with daemon.client() as c:
            return timed_gets(c, "/api/v1/health", requests)
    finally:
        for p in procs:
            p.terminate()
            p.join()


def fill(database: Path, count: int) -> None:
    db = open_database(database)
    store = JobStore(db)
    request = {"prompt": "a lighthouse at dusk", "model": "sd-tiny", "steps": 4}
    # Stored as the daemon stores a job: the request and its resolved plan.
    plan = ResolvedPlan(
        prompt=request["prompt"],
        model="sd-tiny",
        width=64,
        height=64,
        steps=4,
        cfg_scale=7.0,
        sampler="euler_a",
    )
    for i in range(count):
        store.create(
            request,
            model="sd-tiny",
            prompt=request["prompt"],
            priority=i % 3,
            total_steps=4,
            plan=msgspec.to_builtins(msgspec.structs.replace(plan, priority=i % 3)),
        )
    db.close()


# GET /queue before this benchmark existed: every active job, then this per job.
OLD_POSITION = (
    "SELECT (SELECT COUNT(*) FROM jobs AS ahead WHERE ahead.status = 'queued'"
    "   AND (ahead.priority > job.priority"
    "        OR (ahead.priority = job.priority AND ahead.seq < job.seq)))"
    " FROM jobs AS job WHERE job.id = ? AND job.status = 'queued'"
)


def old_listing_seconds(database: Path) -> float:
    """What GET /queue did before: every active job, then a COUNT per job for its position."""
    db = open_database(database)
    store = JobStore(db)
    start = time.perf_counter()
    for job in store.list_active():
        db.execute(OLD_POSITION, (job.id,))
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def measure(daemon: Daemon, requests: int, hammer: int) -> dict[str, list[float]]:
    with daemon.client() as c:
        timed_gets(c, "/api/v1/queue", 20)  # warm up
        return {
            "queue": timed_gets(c, "/api/v1/queue", requests),
            "health": timed_gets(c, "/api/v1/health", requests),
            "health_loaded": health_under_queue_load(daemon, requests, hammer),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--hammer", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_db = Path(tmp) / "old.db"
        fill(old_db, 2000)
        old = old_listing_seconds(old_db)
        daemon = Daemon(Path(tmp) / "d", workers=1, max_queue=args.jobs * 2, rate_limit=0)
        daemon.start()
        try:
            with daemon.client() as c:
                c.post("/api/v1/queue/pause")
            daemon.wait_worker_ready()
            empty = measure(daemon, args.requests, args.hammer)
            started = time.perf_counter()
            fill(daemon.data_dir / "impasto.db", args.jobs)
            filled_s = time.perf_counter() - started
            with daemon.client() as c:
                body = c.get("/api/v1/queue").json()
            assert body["total"] >= args.jobs, body["total"]
            loaded = measure(daemon, args.requests, args.hammer)
        finally:
            daemon.stop()
    print(f"queued {args.jobs} jobs in {filled_s:.1f} s; {args.requests} requests per row")
    print("| read | p50 ms | p99 ms | empty queue p99 ms | p99 / empty |")
    print("|---|---:|---:|---:|---:|")
    rows = [
        ("GET /queue (first page of 100)", "queue"),
        ("GET /health", "health"),
        (f"GET /health, {args.hammer} clients reading /queue", "health_loaded"),
    ]
    for label, key in rows:
        p50, p99, ref = pct(loaded[key], 0.5), pct(loaded[key], 0.99), pct(empty[key], 0.99)
        print(f"| {label} | {p50:.2f} | {p99:.2f} | {ref:.2f} | {p99 / ref:.2f} |")
    print(f"old listing (every job + a COUNT each) at 2,000 queued: {old * 1000:.0f} ms")


if __name__ == "__main__":
    main()
