"""The tray's daemon child: restart with backoff after a crash, none after a stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from impasto_tray import daemon as daemon_module
from impasto_tray.daemon import STABLE_AFTER, DaemonProcess, impasto_command


class FakeProcess:
    def __init__(self) -> None:
        self.returncode: int | None = None
        self.terminated = False

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        self.terminated = True
        self.returncode = -15

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[DaemonProcess, list[FakeProcess], list[dict[str, Any]], Clock]:
    started: list[FakeProcess] = []
    calls: list[dict[str, Any]] = []
    clock = Clock()

    def popen(command: list[str], **options: Any) -> FakeProcess:
        calls.append({"command": command, **options})
        started.append(FakeProcess())
        return started[-1]

    process = DaemonProcess(["impasto", "serve"], env={}, backoff=(1, 4), clock=clock, popen=popen)  # type: ignore[arg-type]
    return process, started, calls, clock


def test_the_child_knows_its_parent_so_it_dies_with_the_tray() -> None:
    process, _, calls, _ = make()
    process.start()
    assert calls[0]["command"] == ["impasto", "serve"]
    assert calls[0]["env"]["IMPASTO_PARENT_PID"].isdigit()


def test_a_crash_restarts_after_a_growing_backoff() -> None:
    process, started, _, clock = make()
    process.start()
    started[-1].returncode = 1
    assert process.poll() is True  # restart pending
    assert len(started) == 1 and process.last_exit == 1
    clock.now += 1
    assert process.poll() is False and len(started) == 2
    started[-1].returncode = 1
    process.poll()
    clock.now += 3
    process.poll()
    assert len(started) == 2  # the second wait is 4 s
    clock.now += 1
    process.poll()
    assert len(started) == 3 and process.alive


def test_a_long_run_resets_the_backoff() -> None:
    process, started, _, clock = make()
    process.start()
    started[-1].returncode = 1
    process.poll()
    clock.now += 1
    process.poll()
    clock.now += STABLE_AFTER
    started[-1].returncode = 1
    process.poll()
    clock.now += 1
    process.poll()
    assert len(started) == 3


def test_a_stop_is_graceful_and_never_restarted() -> None:
    process, started, _, clock = make()
    process.start()
    assert process.stop() == -15
    assert started[0].terminated and not process.wanted
    clock.now += 100
    assert process.poll() is False and len(started) == 1


def test_the_command_is_this_python_outside_the_binary_and_the_binary_inside(
    monkeypatch: Any,
) -> None:
    assert impasto_command("serve") == [sys.executable, "-P", "-m", "impasto", "serve"]
    monkeypatch.setattr(daemon_module, "compiled", lambda: True)
    monkeypatch.setattr(sys, "argv", ["./impasto", "tray"])
    command = daemon_module.impasto_command("serve")
    assert command[1:] == ["serve"] and command[0].endswith("/impasto")
    assert command[0].startswith("/")


def test_a_refused_start_is_shown_with_the_daemons_reason(tmp_path: Path) -> None:
    """`impasto serve` says why it exits 1 on one `impasto: ...` line; the tray shows it, and
    only this run's: an earlier run's reason in the same file is not repeated."""
    output = tmp_path / "tray-daemon.out"
    output.write_text("impasto: an earlier run's reason\n")
    started: list[FakeProcess] = []

    def popen(command: list[str], **options: Any) -> FakeProcess:
        started.append(FakeProcess())
        return started[-1]

    process = DaemonProcess(
        ["impasto", "serve"],
        env={},
        log_file=output,
        backoff=(1,),
        popen=popen,  # type: ignore[arg-type]
    )
    process.start()
    started[-1].returncode = 1
    process.poll()
    assert process.exit_message() == "the daemon exited with code 1"
    process.restart_at = 0  # restart now
    process.poll()
    with output.open("a") as out:
        out.write("Impasto 0.1.0\nimpasto: port 8080 on 127.0.0.1 is in use by another program\n")
    started[-1].returncode = 1
    process.poll()
    assert process.exit_message() == (
        "the daemon exited with code 1: port 8080 on 127.0.0.1 is in use by another program"
    )


def test_a_folder_named_impasto_where_the_tray_runs_does_not_shadow_the_package(
    tmp_path: Path,
) -> None:
    """At login the tray (and so its daemon) runs in the home folder, where a clone or any
    folder called "impasto" may lie: the command imports the installed package anyway."""
    shadow = tmp_path / "impasto"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise SystemExit('the shadow package was imported')")
    (shadow / "__main__.py").write_text("raise SystemExit('the shadow package ran')")
    result = subprocess.run(
        impasto_command("version"), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith("impasto "), result
