"""The log files: daemon.log holds the daemon's log, failures are one line, files rotate."""

from __future__ import annotations

import logging
import logging.handlers
import time
from pathlib import Path

import httpx

from impasto.logs import MAX_BYTES, configure_daemon_logging, rotate_if_large
from tests.harness import TINY, Daemon, free_port, wait_status


def wait_install(client: httpx.Client, install_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/models/installs/{install_id}").json()
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.05)
    raise TimeoutError(install_id)


def test_daemon_log_holds_an_offline_install_as_one_line_naming_the_host(tmp_path: Path) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    daemon = Daemon(tmp_path, hf_endpoint=unreachable, workers=1).start()
    try:
        with daemon.client() as c:
            started = c.post("/api/v1/models/install", json={"source": "someone/some-model"})
            assert started.status_code == 202, started.text
            done = wait_install(c, started.json()["id"])
    finally:
        daemon.stop()
    assert done["status"] == "failed", done
    error = done["error"]
    assert "cannot reach 127.0.0.1" in error and "HF_ENDPOINT" in error and "proxy" in error
    log = (daemon.log_dir / "daemon.log").read_text()
    assert "shutting down" in log, log  # the daemon's own messages land in the file
    # Its start too: where it listens and which folders it uses.
    assert f"started (pid {daemon.process.pid}): {daemon.url}/" in log, log  # type: ignore[union-attr]
    assert f"data {daemon.data_dir}" in log, log
    # It holds prompts and folder names: its owner's to read.
    for name in ("daemon.log", "worker-0.log"):
        assert (daemon.log_dir / name).stat().st_mode & 0o777 == 0o600, name
    about = [line for line in log.splitlines() if started.json()["id"] in line]
    assert len(about) == 1 and "cannot reach 127.0.0.1" in about[0], log
    assert "Traceback" not in log and "Traceback" not in daemon.output()


def test_daemon_log_rotates(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        path = configure_daemon_logging("info", tmp_path)
        files = [h for h in root.handlers if isinstance(h, logging.handlers.RotatingFileHandler)]
        assert len(files) == 1 and files[0].maxBytes == MAX_BYTES and files[0].backupCount
        files[0].maxBytes = 200
        for n in range(20):
            logging.getLogger("impasto.test").info("line %d of the rotation test", n)
        assert path.stat().st_size <= 200 and path.with_name("daemon.log.1").is_file()
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def test_worker_logs_rotate_when_the_worker_starts(tmp_path: Path) -> None:
    log = tmp_path / "worker-0.log"
    log.write_bytes(b"x" * 101)
    (tmp_path / "worker-0.log.1").write_bytes(b"older")
    rotate_if_large(log, max_bytes=100, backups=3)
    assert not log.exists()
    assert (tmp_path / "worker-0.log.1").read_bytes() == b"x" * 101
    assert (tmp_path / "worker-0.log.2").read_bytes() == b"older"
    log.write_bytes(b"small")
    rotate_if_large(log, max_bytes=100, backups=3)
    assert log.read_bytes() == b"small"


def test_a_log_dir_it_cannot_write_stops_the_daemon_at_start(tmp_path: Path) -> None:
    """Its workers' logs live there too: started anyway, it would say it is healthy and
    never run a job."""
    daemon = Daemon(tmp_path)
    (daemon.log_dir / "daemon.log").mkdir(parents=True)  # opening it fails, even for root
    refused = daemon.refused()
    assert refused.returncode == 1, refused.stderr
    assert f"log_dir {daemon.log_dir}: daemon.log cannot be written there" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_worker_that_cannot_be_started_is_a_health_problem_and_fails_the_queue(
    tmp_path: Path,
) -> None:
    daemon = Daemon(tmp_path, workers=1)
    (daemon.log_dir / "worker-0.log").mkdir(parents=True)  # its stderr cannot be opened
    daemon.start()
    try:
        with daemon.client() as client:
            job = client.post("/api/v1/generate", json={"prompt": "x", **TINY}).json()
            deadline = time.monotonic() + 60
            health: dict = {}
            while time.monotonic() < deadline and not health.get("problem"):
                health = client.get("/api/v1/health").json()
                time.sleep(0.2)
            assert health["status"] == "error", health
            assert "cannot start" in health["problem"], health
            assert (
                "could not be started" in health["problem"] and "worker-0.log" in health["problem"]
            )
            failed = wait_status(client, job["id"], {"failed"}, timeout=30)
            assert "cannot start" in failed["error"], failed
    finally:
        daemon.stop()
