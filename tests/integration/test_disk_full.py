"""A full disk under a real daemon (a small tmpfs): 507 on submit, no job stuck, cancel works."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Daemon, wait_status

# Long enough on the tiny model that the disk fills while the job runs.
LONG = {"prompt": "a red fox", "width": 256, "height": 256, "steps": 150, "batch_size": 4}


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "48m"):
        if os.environ.get("CI"):
            pytest.fail("the disk-full tests need root to mount a tmpfs (CI runs as root)")
        pytest.skip("needs root (mount -t tmpfs) for a real small disk")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


class Filler:
    """Fills a filesystem to the last byte, and frees it again."""

    def __init__(self, disk: Path, database: Path) -> None:
        self.path = disk / "filler"
        self.database = database

    def fill(self) -> None:
        # An empty write-ahead log: the daemon's next commit must grow a file, so it fails.
        with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with self.path.open("ab", buffering=0) as out:
            for size in (1024 * 1024, 4096, 1):
                with contextlib.suppress(OSError):
                    while out.write(bytes(size)):
                        pass

    def free(self) -> None:
        self.path.unlink()


@pytest.fixture
def daemon(small_disk: Path, tmp_path: Path) -> Iterator[tuple[Daemon, Filler]]:
    running = Daemon(tmp_path / "daemon", workers=1, max_attempts=5)
    running.data_dir = small_disk / "data"
    running.start()
    running.wait_worker_ready()
    yield running, Filler(small_disk, running.data_dir / "impasto.db")
    running.stop()


def _dropped_by_its_worker(daemon: Daemon, job_id: str, timeout: float = 60.0) -> None:
    """Wait until no worker runs ``job_id`` any more (it failed to record the job)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(w.get("job_id") != job_id for w in daemon.workers()):
            return
        time.sleep(0.1)
    raise TimeoutError(f"a worker still runs {job_id}")


def _running(c: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = c.get(f"/api/v1/generate/{job_id}").json()
        if body["status"] == "processing" and body["current_step"] >= 1:
            return body
        assert body["status"] in ("queued", "processing"), body
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} never ran")


def test_a_job_interrupted_by_a_full_disk_is_requeued_and_completes(
    daemon: tuple[Daemon, Filler],
) -> None:
    running, filler = daemon
    with running.client() as c:
        job_id = c.post("/api/v1/generate", json=LONG).json()["id"]
        _running(c, job_id)
        filler.fill()
        try:
            _dropped_by_its_worker(running, job_id)
            # Submitting while the disk is full: 507 "disk full", never a 500.
            answer = c.post("/api/v1/generate", json={"prompt": "x", "steps": 1})
            assert answer.status_code == 507, answer.text
            assert "disk full" in answer.json()["detail"]
            assert answer.headers.get("Retry-After")
            assert c.get("/api/v1/health").status_code == 200
        finally:
            filler.free()
        # Space is back: the job is requeued (the attempt counted) and runs to the end.
        done = wait_status(c, job_id, {"completed", "failed", "cancelled"}, timeout=240)
    assert done["status"] == "completed", done
    assert done["attempts"] >= 1


def test_cancel_works_on_a_job_its_worker_dropped(daemon: tuple[Daemon, Filler]) -> None:
    running, filler = daemon
    with running.client() as c:
        job_id = c.post("/api/v1/generate", json=LONG).json()["id"]
        _running(c, job_id)
        filler.fill()
        try:
            _dropped_by_its_worker(running, job_id)
            while_full = c.post(f"/api/v1/generate/{job_id}/cancel")
            assert while_full.status_code in (200, 507), while_full.text
        finally:
            filler.free()
        cancelled = c.post(f"/api/v1/generate/{job_id}/cancel")
        if cancelled.status_code == 409:  # the first cancel went through after all
            assert cancelled.json()["detail"].endswith("cancelled")
        else:
            assert cancelled.status_code == 200, cancelled.text
        done = wait_status(c, job_id, {"completed", "failed", "cancelled"}, timeout=120)
    assert done["status"] == "cancelled", done
