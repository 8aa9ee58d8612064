"""API benchmark: status-read latency under 50 concurrent clients (TCP and Unix socket) and the
daemon's overhead per tiny-model job, each against a reference measured in the same run.

    python bench/api.py [--clients 50] [--requests 40] [--jobs 20]

Reference for reads: a bare ASGI app answering the same JSON bytes on the same granian server
stack, loaded the same way, so ratios cancel out the machine's speed and noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.harness import Daemon, free_port


async def _one_client(open_conn, path: str, requests: int, latencies: list[float]) -> None:
    reader, writer = await open_conn()
    request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    for _ in range(requests):
        start = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - start)
    writer.close()


async def load(open_conn, path: str, clients: int, requests: int) -> list[float]:
    """``clients`` keep-alive connections each sending ``requests`` GETs back to back."""
    latencies: list[float] = []
    await asyncio.gather(
        *(_one_client(open_conn, path, requests, latencies) for _ in range(clients))
    )
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def reference_server(body: bytes) -> tuple[int, Path, threading.Event]:
    """A bare ASGI app on granian (TCP + socket), the floor for a status read."""
    from granian.constants import Interfaces
    from granian.server.embed import Server

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    port = free_port()
    sock = Path(tempfile.mkdtemp()) / "ref.sock"
    ready = threading.Event()

    def run() -> None:
        async def main() -> None:
            servers = [
                Server(
                    app,
                    address="127.0.0.1",
                    port=port,
                    interface=Interfaces.ASGINL,
                    log_enabled=False,
                ),
                Server(app, uds=sock, interface=Interfaces.ASGINL, log_enabled=False),
            ]
            tasks = [asyncio.create_task(s.serve()) for s in servers]
            while not sock.exists():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            ready.set()
            await asyncio.gather(*tasks)

        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    ready.wait(30)
    return port, sock, ready


def read_latency(
    daemon: Daemon, job_id: str, clients: int, requests: int
) -> list[tuple[str, float, float, float]]:
    with daemon.client() as c:
        body = c.get(f"/api/v1/generate/{job_id}").content
    ref_port, ref_sock, _ = reference_server(body)
    path = f"/api/v1/generate/{job_id}"
    rows = []
    targets = {
        "tcp": (
            lambda: asyncio.open_connection("127.0.0.1", daemon.port),
            lambda: asyncio.open_connection("127.0.0.1", ref_port),
        ),
        "socket": (
            lambda: asyncio.open_unix_connection(str(daemon.socket)),
            lambda: asyncio.open_unix_connection(str(ref_sock)),
        ),
    }
    for name, (ours, ref) in targets.items():
        asyncio.run(load(ours, path, clients, 5))  # warm-up
        ours_lat = asyncio.run(load(ours, path, clients, requests))
        ref_lat = asyncio.run(load(ref, path, clients, requests))
        rows.append((name, pct(ours_lat, 0.5), pct(ours_lat, 0.99), pct(ref_lat, 0.99)))
    return rows


def job_overhead(daemon: Daemon, jobs: int) -> dict[str, float]:
    """Submit-to-completed time as a client sees it, minus the worker's engine time."""
    request = {
        "prompt": "overhead probe",
        "width": 64,
        "height": 64,
        "steps": 1,
        "cfg_scale": 1.0,
        "seed": 1,
    }
    totals, overheads, writes = [], [], []
    with daemon.client() as client:
        for _ in range(jobs):
            with client.stream("GET", "/api/v1/events") as stream:
                lines = stream.iter_lines()
                next(lines)  # the stream is open: the comment line arrived
                start = time.perf_counter()
                job_id = client.post("/api/v1/generate", json=request).json()["id"]
                for line in lines:
                    if line.startswith("data:"):
                        event = json.loads(line[5:])
                        if event["job_id"] == job_id and event["type"] == "completed":
                            total = time.perf_counter() - start
                            timings = event["data"]["timings"]
                            totals.append(total * 1000)
                            overheads.append((total - timings["engine"]) * 1000)
                            writes.append(timings["write"] * 1000)
                            break
    return {
        "total_median_ms": statistics.median(totals),
        "engine_median_ms": statistics.median(
            t - o for t, o in zip(totals, overheads, strict=True)
        ),
        "overhead_median_ms": statistics.median(overheads),
        "overhead_p90_ms": pct([o / 1000 for o in overheads], 0.9),
        "png_write_median_ms": statistics.median(writes),
    }


ASSET = re.compile(
    r"""(?:src|href)="/?([\w./-]+\.(?:js|css|svg|png|ico))"|from\s+['"]\./([^'"]+\.js)['"]"""
)


def first_load(daemon: Daemon, runs: int = 20) -> dict[str, float]:
    """Time to fetch / and every asset it pulls in (modules followed), one client, serially."""
    totals, counts, sizes = [], [], []
    for _ in range(runs):
        with daemon.client() as client:  # a new connection, like a fresh browser tab
            start = time.perf_counter()
            todo, seen, size = ["/"], set(), 0
            while todo:
                path = todo.pop()
                if path in seen:
                    continue
                seen.add(path)
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)
                body = response.content
                size += len(body)
                base = path.rsplit("/", 1)[0] if path.endswith(".js") else ""
                for linked, imported in ASSET.findall(body.decode("utf-8", "replace")):
                    todo.append(f"/{linked}" if linked else f"{base}/{imported}")
            totals.append((time.perf_counter() - start) * 1000)
            counts.append(len(seen))
            sizes.append(size)
    return {
        "files": counts[-1],
        "kilobytes": sizes[-1] / 1024,
        "median_ms": statistics.median(totals),
        "p90_ms": pct([t / 1000 for t in totals], 0.9),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40, help="requests per client")
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp), rate_limit=0, preview_every=0).start()
        try:
            daemon.wait_worker_ready()
            with daemon.client() as c:
                warm = c.post(
                    "/api/v1/generate",
                    json={"prompt": "warm", "width": 64, "height": 64, "steps": 1},
                ).json()
                while c.get(f"/api/v1/generate/{warm['id']}").json()["status"] != "completed":
                    time.sleep(0.05)
            overhead = job_overhead(daemon, args.jobs)
            page = first_load(daemon)
            rows = read_latency(daemon, warm["id"], args.clients, args.requests)
        finally:
            daemon.stop()
    print(
        f"\nStatus reads: {args.clients} concurrent keep-alive clients"
        f" x {args.requests} GET /api/v1/generate/{{id}}"
    )
    print(
        f"{'transport':<10}{'p50 ms':>10}{'p99 ms':>10}{'ref p99 ms':>12}{'p99/ref':>10}"
        "   target p99 < 10 ms"
    )
    for name, p50, p99, ref99 in rows:
        print(f"{name:<10}{p50:>10.2f}{p99:>10.2f}{ref99:>12.2f}{p99 / ref99:>10.2f}")
    print(
        f"\nJob overhead over {args.jobs} tiny jobs (64x64, 1 step), submit -> 'completed' event:"
    )
    for key, value in overhead.items():
        print(f"  {key:<22}{value:>8.2f}")
    print("  target: overhead median < 20 ms")
    print("\nFirst load of the web UI (/ and every script, style and image it pulls in, serially):")
    for key, value in page.items():
        print(f"  {key:<22}{value:>8.2f}")
    print("  target: under 100 ms on loopback")
    return 0


if __name__ == "__main__":
    sys.exit(main())
