"""Smoke test of the built binary, run from a temp dir with no Python environment around it.

    python packaging/smoke.py packaging/out/impasto      # prints a JSON summary

Checks `serve`, /health over TCP and the Unix socket, a tiny-model generation through
`impasto generate`, and a clean stop on SIGTERM; measures size and cold start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from nuitka_layout import copy_program, standalone_folder


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(work: Path, port: int) -> dict[str, str]:
    """Only what a fresh login has: no virtualenv, no PYTHON* variables, private folders."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work / "home"),
        "LANG": "C.UTF-8",
        # A fresh cache: the first start unpacks the onefile payload, as after an install.
        "XDG_CACHE_HOME": str(work / "cache"),
        "IMPASTO_CONFIG": str(work / "config.toml"),
        "IMPASTO_PORT": str(port),
        "IMPASTO_DATA_DIR": str(work / "data"),
        "IMPASTO_RUNTIME_DIR": str(work / "run"),
        "IMPASTO_LOG_DIR": str(work / "logs"),
    }


def wait_health(url: str, socket_path: Path, process: subprocess.Popen[bytes]) -> float:
    """Seconds until /health answers over TCP; raises if the daemon exits first."""
    started = time.monotonic()
    while time.monotonic() - started < 180:
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError("/health never answered")


def wait_worker(url: str) -> float:
    """Seconds until a worker reports ready (idle) in /api/v1/system."""
    started = time.monotonic()
    while time.monotonic() - started < 180:
        workers = httpx.get(f"{url}/api/v1/system", timeout=5).json()["workers"]
        if any(w["state"] == "idle" for w in workers):
            return time.monotonic() - started
        time.sleep(0.02)
    raise TimeoutError("no worker became ready")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc; empty elsewhere)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants (Linux /proc; 0 elsewhere)."""
    total = 0
    for each in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def run_once(
    binary: Path | list[str], work: Path, generate: bool, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Start the daemon once; optionally generate; stop it. Returns the measurements.

    ``binary`` is the executable, or a command that runs impasto (``python -m impasto``).
    """
    command = [str(binary)] if isinstance(binary, Path) else binary
    port = free_port()
    env = {**clean_env(work, port), **(env or {})}
    url = f"http://127.0.0.1:{port}"
    log = (work / "daemon.out").open("ab")
    process = subprocess.Popen([*command, "serve"], env=env, stdout=log, stderr=log, cwd=work)
    result: dict[str, Any] = {}
    try:
        started = time.monotonic()
        result["health_s"] = round(wait_health(url, work / "run" / "impasto.sock", process), 2)
        wait_worker(url)
        result["worker_ready_s"] = round(time.monotonic() - started, 2)
        result["tree_rss_mb"] = round(tree_rss(process.pid) / 1e6, 1)
        result["processes"] = 1 + len(descendants(process.pid))
        sock = httpx.HTTPTransport(uds=str(work / "run" / "impasto.sock"))
        with httpx.Client(transport=sock, base_url="http://impasto") as client:
            health = client.get("/api/v1/health").json()
        result["socket_health"] = health["status"]
        result["version"] = health["version"]
        if generate:
            started = time.monotonic()
            out = subprocess.run(
                [*command, "generate", "a red lighthouse", "--width", "64", "--height", "64",
                 "--steps", "4", "--seed", "1", "--quiet", "-o", str(work / "images")],
                env=env, capture_output=True, text=True, timeout=300, cwd=work,
            )  # fmt: skip
            if out.returncode != 0:
                raise RuntimeError(f"generate failed ({out.returncode}): {out.stderr}")
            result["generate_s"] = round(time.monotonic() - started, 2)
            result["images"] = sorted(p.name for p in (work / "images").glob("*.png"))
            if not result["images"]:
                raise RuntimeError(f"generate wrote no PNG: {out.stdout} {out.stderr}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            result["exit_code"] = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            result["exit_code"] = "killed"
        log.close()
    result["discovery_removed"] = not (work / "run" / "daemon.json").exists()
    return result


def program_mb(local: Path) -> float:
    """The size of the program: its one file, or its whole standalone folder."""
    folder = standalone_folder(local)
    files = [local] if folder is None else [p for p in folder.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 1e6, 1)


def smoke(binary: Path, work: Path) -> dict[str, Any]:
    """Copy the program into ``work`` and run it twice: cold (fresh cache) and warm."""
    work.mkdir(parents=True, exist_ok=True)
    local = copy_program(binary, work / "bin")
    cold = run_once(local, work, generate=True)
    warm = run_once(local, work, generate=False)
    return {
        "binary_mb": program_mb(local),
        "standalone": standalone_folder(local) is not None,
        "cold": cold,
        "warm": warm,
        "ok": all(
            r["exit_code"] == 0 and r["discovery_removed"] and r["socket_health"] == "ok"
            for r in (cold, warm)
        ),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the smoke test and print its JSON; exit 1 unless everything passed."""
    args = sys.argv[1:] if argv is None else argv
    binary = Path(args[0] if args else "packaging/out/impasto").resolve()
    with tempfile.TemporaryDirectory(prefix="impasto-smoke-") as folder:
        summary = smoke(binary, Path(folder))
        if not summary["ok"]:
            print((Path(folder) / "daemon.out").read_text(errors="replace"), file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
