"""Crash recovery: a killed worker or daemon loses no job and leaves no partial file."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

from tests.harness import TINY, Daemon, wait_gone, wait_status

SLOW = {"width": 256, "height": 256, "steps": 60}


def _wait_processing(daemon: Daemon, job_id: str, min_step: int = 1, timeout: float = 60.0) -> int:
    """Wait until the job is running and return the pid of the worker running it."""
    deadline = time.monotonic() + timeout
    with daemon.client() as client:
        while time.monotonic() < deadline:
            job = client.get(f"/api/v1/generate/{job_id}").json()
            if job["status"] == "processing" and job["current_step"] >= min_step:
                for worker in daemon.workers():
                    if worker["job_id"] == job_id:
                        return int(worker["pid"])
            time.sleep(0.05)
    raise TimeoutError(f"job {job_id} never started")


def test_worker_killed_mid_job_is_restarted_and_job_completes(
    daemon_factory: type[Daemon], tmp_path
) -> None:
    daemon = daemon_factory(tmp_path).start()
    daemon.wait_worker_ready()
    with daemon.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "survivor", "seed": 5, **SLOW}).json()
        pid = _wait_processing(daemon, job["id"], min_step=2)
        os.kill(pid, signal.SIGKILL)
        done = wait_status(client, job["id"], {"completed", "failed"}, timeout=240)
        assert done["status"] == "completed", done
        assert done["attempts"] == 1
        new_pid = daemon.wait_worker_ready()["pid"]
        assert new_pid != pid


def test_job_fails_after_three_worker_deaths_with_the_reason(
    daemon_factory: type[Daemon], tmp_path
) -> None:
    daemon = daemon_factory(tmp_path).start()
    daemon.wait_worker_ready()
    with daemon.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "doomed", **SLOW}).json()
        for _attempt in range(3):
            os.kill(_wait_processing(daemon, job["id"]), signal.SIGKILL)
            time.sleep(0.2)
        done = wait_status(client, job["id"], {"failed", "completed"}, timeout=120)
        assert done["status"] == "failed"
        assert done["error"] == "worker killed by signal 9 (SIGKILL) (tried 3 times)"
        assert done["attempts"] == 3  # as many as the error says
        # The next job still runs on a fresh worker.
        ok = client.post("/api/v1/generate", json={"prompt": "after", **TINY}).json()
        assert wait_status(client, ok["id"], {"completed", "failed"})["status"] == "completed"


def test_daemon_killed_with_queued_jobs_finishes_them_after_restart(
    daemon_factory: type[Daemon], tmp_path
) -> None:
    daemon = daemon_factory(tmp_path).start()
    daemon.wait_worker_ready()
    with daemon.client() as client:
        running = client.post("/api/v1/generate", json={"prompt": "running", **SLOW}).json()
        queued = [
            client.post("/api/v1/generate", json={"prompt": f"queued {i}", **TINY}).json()
            for i in range(3)
        ]
        _wait_processing(daemon, running["id"], min_step=1)
    worker_pids = [w["pid"] for w in daemon.workers()]
    daemon.kill()
    wait_gone(worker_pids)  # the worker notices its pipe closed and exits
    assert daemon.discovery_file.exists()  # left behind by the crash ...

    restarted = daemon_factory(tmp_path, port=daemon.port).start()  # ... and cleaned up on start
    assert restarted.discovery()["pid"] == restarted.process.pid
    with restarted.client() as client:
        for job in [running, *queued]:
            done = wait_status(client, job["id"], {"completed", "failed"}, timeout=240)
            assert done["status"] == "completed", done
        assert client.get(f"/api/v1/generate/{running['id']}").json()["attempts"] == 1
    restarted.stop()
    outputs = list((tmp_path / "data" / "outputs").rglob("*"))
    assert not [p for p in outputs if p.name.endswith(".tmp")]
    pngs = [p for p in outputs if p.suffix == ".png"]
    assert len(pngs) == 4
    with sqlite3.connect(tmp_path / "data" / "impasto.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_graceful_stop_keeps_the_running_job_queued(daemon_factory: type[Daemon], tmp_path) -> None:
    daemon = daemon_factory(tmp_path).start()
    daemon.wait_worker_ready()
    with daemon.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "interrupted", **SLOW}).json()
        _wait_processing(daemon, job["id"], min_step=1)
    assert daemon.stop() == 0
    assert not daemon.discovery_file.exists()
    assert not daemon.socket.exists()
    restarted = daemon_factory(tmp_path, port=daemon.port).start()
    with restarted.client() as client:
        done = wait_status(client, job["id"], {"completed", "failed"}, timeout=240)
        assert done["status"] == "completed"
        assert done["attempts"] == 0  # a clean stop is not a failed attempt


def test_a_paused_queue_stays_paused_across_a_restart(
    daemon_factory: type[Daemon], tmp_path
) -> None:
    """`impasto queue pause` holds the queue until a resume, a restart in between too."""
    daemon = daemon_factory(tmp_path).start()
    with daemon.client() as client:
        assert client.post("/api/v1/queue/pause").json() == {"paused": True}
        held = client.post("/api/v1/generate", json={"prompt": "held", **TINY}).json()
    assert daemon.stop() == 0
    restarted = daemon_factory(tmp_path, port=daemon.port).start()
    restarted.wait_worker_ready()
    try:
        with restarted.client() as client:
            assert client.get("/api/v1/queue").json()["paused"] is True
            time.sleep(1.0)  # a worker is ready: an unpaused queue would have started it
            assert client.get(f"/api/v1/generate/{held['id']}").json()["status"] == "queued"
            assert client.post("/api/v1/queue/resume").json() == {"paused": False}
            assert wait_status(client, held["id"], {"completed", "failed"})["status"] == (
                "completed"
            )
    finally:
        restarted.stop()
    assert "the queue is paused, as it was left" in (restarted.log_dir / "daemon.log").read_text()
