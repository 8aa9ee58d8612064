"""Connection benchmark: /health latency while 300 idle connections and 150 SSE streams are open.

    python bench/connections.py [--idle 300] [--streams 150] [--requests 50]

Reference, same run: the same daemon with no load. Second reference: a daemon limited to 128
connections (granian's former default backpressure): the streams hold every permit for as
long as they stay open, so the request is never answered.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.harness import Daemon


def _latencies(url: str, requests: int, timeout: float = 60.0) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=timeout) as client:
        for _ in range(requests):
            start = time.perf_counter()
            client.get("/api/v1/health").raise_for_status()
            out.append(time.perf_counter() - start)
    return out


def _load(port: int, idle: int, streams: int) -> list[socket.socket]:
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
    for _ in range(streams):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        held.append(sock)
    return held


def _row(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {p99:.1f} | {ms[-1]:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle", type=int, default=300)
    parser.add_argument("--streams", type=int, default=150)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp) / "default", workers=1).start()
        try:
            quiet = _latencies(daemon.url, args.requests)
            held = _load(daemon.port, args.idle, args.streams)
            time.sleep(1.0)
            loaded = _latencies(daemon.url, args.requests)
            for sock in held:
                sock.close()
        finally:
            daemon.stop()
        rows += [_row("defaults, no load", quiet), _row("defaults, under load", loaded)]
        old = Daemon(Path(tmp) / "old", workers=1, max_connections=128).start()
        try:
            held = _load(old.port, args.idle, args.streams)
            time.sleep(1.0)
            try:
                starved = _row("max_connections=128, under load", _latencies(old.url, 3, 30.0))
            except httpx.TimeoutException:
                starved = "| max_connections=128, under load | 1 | no answer in 30 s | | |"
            for sock in held:
                sock.close()
        finally:
            old.stop()
        rows.append(starved)
    print(f"{args.idle} idle connections + {args.streams} SSE streams; GET /api/v1/health\n")
    print("| daemon | requests | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|")
    print("\n".join(rows))
    print(
        f"\nunder load / no load, p50: {statistics.median(loaded) / statistics.median(quiet):.2f}"
    )


if __name__ == "__main__":
    main()
