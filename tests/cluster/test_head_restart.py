"""The daemon outlives a restart of the Ray head: it reconnects, and requeues without duplicates."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.cluster.raycluster import LocalRayCluster
from tests.harness import Daemon, free_port, wait_status

pytestmark = pytest.mark.timeout(240)
LONG = {"width": 128, "height": 128, "steps": 60}


def test_the_daemon_reconnects_after_the_head_restarts(tmp_path: Path) -> None:
    port = free_port()
    cache = tmp_path / "node-cache"
    cluster = LocalRayCluster(cache, head_cpus=1, port=port)
    daemon = Daemon(tmp_path / "daemon", cluster=cluster.address)
    restarted = None
    try:
        daemon.start()
        daemon.wait_worker_ready(timeout=90)
        with daemon.client() as client:
            job_id = client.post("/api/v1/generate", json={"prompt": "x", **LONG}).json()["id"]
            deadline = time.monotonic() + 60
            while client.get(f"/api/v1/generate/{job_id}").json()["current_step"] < 2:
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.05)
            cluster.close()  # the head and its worker die mid-job
            time.sleep(8)  # past the driver's reconnect timeout: the bridge is gone too
            assert daemon.process is not None and daemon.process.poll() is None
            assert client.get("/api/v1/health").status_code == 200
            restarted = LocalRayCluster(cache, head_cpus=1, port=port)
            done = wait_status(client, job_id, {"completed", "failed"}, timeout=150)
        assert done["status"] == "completed", done
        assert done["attempts"] == 1, done
        db = sqlite3.connect(f"file:{daemon.data_dir / 'impasto.db'}?mode=ro", uri=True)
        with db:
            kinds = [
                row[0] for row in db.execute("SELECT type FROM events WHERE job_id = ?", (job_id,))
            ]
            retry = [
                json.loads(row[0]).get("retry", "")
                for row in db.execute(
                    "SELECT data FROM events WHERE job_id = ? AND type = 'queued'", (job_id,)
                )
            ]
        db.close()
        assert kinds.count("completed") == 1
        assert "Ray" in retry[-1], retry
        pngs = list((daemon.data_dir / "outputs").rglob("*.png"))
        assert [p.name for p in pngs] == [f"{job_id}-0.png"]
    finally:
        daemon.stop()
        if restarted is not None:
            restarted.close()
        cluster.close()
