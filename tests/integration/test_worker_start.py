"""Workers that cannot be shadowed by the working folder, and workers that cannot start at all."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from impasto_tray.controller import TrayController
from impasto_tray.daemon import DaemonProcess
from impasto_tray.state import DaemonState
from tests.harness import TINY, Daemon, wait_status


def _console_script() -> list[str]:
    """`impasto serve` as a user runs it (the console script), not `python -m`."""
    script = Path(sys.executable).with_name("impasto")
    if script.exists():
        return [str(script), "serve"]
    found = shutil.which("impasto")
    if found:
        return [found, "serve"]
    # No console script installed: a startup that does not put the folder on the path.
    return [sys.executable, "-P", "-m", "impasto", "serve"]


def test_a_folder_named_impasto_where_the_daemon_starts_cannot_shadow_the_worker(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    shadow = home / "impasto"  # say, the user's own project of that name
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('"""Not the Impasto package."""\n')
    daemon = Daemon(tmp_path / "daemon", workers=1)
    daemon.command, daemon.cwd = _console_script(), home
    daemon.start()
    try:
        daemon.wait_worker_ready(timeout=90)
        with daemon.client() as c:
            assert c.get("/api/v1/health").json()["status"] == "ok"
            job_id = c.post("/api/v1/generate", json={"prompt": "a fox", **TINY}).json()["id"]
            assert wait_status(c, job_id, {"completed", "failed"})["status"] == "completed"
    finally:
        daemon.stop()


def test_workers_that_cannot_start_show_in_health_status_and_fail_the_queue(
    tmp_path: Path,
) -> None:
    # A provider this machine lacks (AMD's MIGraphX): every worker start dies before Ready.
    daemon = Daemon(tmp_path, workers=1, provider="migraphx").start()
    try:
        with daemon.client() as c:
            job_id = c.post("/api/v1/generate", json={"prompt": "a fox", **TINY}).json()["id"]
            deadline = time.monotonic() + 120
            health = c.get("/api/v1/health").json()
            while health["status"] == "ok" and time.monotonic() < deadline:
                time.sleep(0.2)
                health = c.get("/api/v1/health").json()
            assert health["status"] == "error", health
            assert "cannot start" in health["problem"] and "migraphx" in health["problem"]
            # The worker exits with its error, not killed by an abort on the way out.
            assert "exited with code 1" in health["problem"], health
            assert "signal" not in health["problem"], health
            # The waiting job fails with that reason instead of waiting forever.
            failed = wait_status(c, job_id, {"completed", "failed", "cancelled"}, timeout=120)
            assert failed["status"] == "failed" and "cannot start" in failed["error"], failed
            # A job submitted now fails too, within a bounded time.
            later = c.post("/api/v1/generate", json={"prompt": "later", **TINY}).json()["id"]
            done = wait_status(c, later, {"completed", "failed", "cancelled"}, timeout=120)
            assert done["status"] == "failed" and "cannot start" in done["error"], done
        status = subprocess.run(
            [sys.executable, "-m", "impasto", "status", "--url", daemon.url],
            capture_output=True,
            text=True,
            env=daemon.env(),
            timeout=60,
            check=False,
        )
        assert status.returncode == 1, status.stdout + status.stderr
        assert "Problem:" in status.stdout and "cannot start" in status.stdout
        # The tray, watching that daemon, shows the error and its reason.
        tray = TrayController(
            runtime_dir=daemon.runtime_dir,
            output_dir=daemon.data_dir / "outputs",
            daemon=DaemonProcess(env=daemon.env(), log_file=tmp_path / "tray.out"),
            platform=None,
            autostart_command=["impasto", "tray"],
        )
        snapshot = tray.refresh()
        assert snapshot.state is DaemonState.ERROR
        assert snapshot.running  # it answers: the tray offers to stop it, not to start another
        assert "cannot start" in snapshot.status_line
    finally:
        daemon.stop()
