"""A job during which the daemon itself is killed is retried at the next start, and each such
try counts: after ``max_attempts`` of them it fails with the reason, instead of taking the
daemon down for ever (a service manager restarts it each time)."""

from __future__ import annotations

import time

from tests.harness import Daemon, wait_gone, wait_status

SLOW = {"width": 256, "height": 256, "steps": 100}


def _wait_processing(daemon: Daemon, job_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with daemon.client() as client:
        while time.monotonic() < deadline:
            job = client.get(f"/api/v1/generate/{job_id}").json()
            if job["status"] == "processing" and job["current_step"] >= 1:
                return
            time.sleep(0.05)
    raise TimeoutError(f"job {job_id} never started")


def _kill_during(daemon: Daemon, job_id: str) -> None:
    _wait_processing(daemon, job_id)
    workers = [w["pid"] for w in daemon.workers()]
    daemon.kill()
    wait_gone(workers)


def test_a_job_the_daemon_dies_during_fails_after_max_attempts(
    daemon_factory: type[Daemon], tmp_path
) -> None:
    daemon = daemon_factory(tmp_path, max_attempts=2).start()
    with daemon.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "fatal", **SLOW}).json()
    _kill_during(daemon, job["id"])

    again = daemon_factory(tmp_path, port=daemon.port, max_attempts=2).start()
    with again.client() as client:
        retried = client.get(f"/api/v1/generate/{job['id']}").json()
        assert retried["status"] in ("queued", "processing")
        assert retried["attempts"] == 1
    _kill_during(again, job["id"])

    last = daemon_factory(tmp_path, port=daemon.port, max_attempts=2).start()
    with last.client() as client:
        done = wait_status(client, job["id"], {"failed", "completed"}, timeout=10)
        assert done["status"] == "failed"
        assert done["error"] == "the daemon stopped during this job (tried 2 times)"
        assert done["attempts"] == 2
