"""The tray's logic without any GUI: watch the daemon, publish snapshots, run menu actions."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from impasto.client import ApiError, Client, DaemonNotRunning, ImpastoError
from impasto.client.discovery import read_discovery_file
from impasto_tray.daemon import DaemonProcess
from impasto_tray.state import DaemonState, Snapshot, snapshot_from_queue

log = logging.getLogger(__name__)

Observer = Callable[[Snapshot], None]

# A started daemon that has not answered after this long is shown as an error.
START_TIMEOUT = 90.0


class TrayController:
    """Owns the daemon child (if any), polls the daemon through the client, runs the actions."""

    def __init__(
        self,
        *,
        runtime_dir: Path,
        output_dir: Path,
        daemon: DaemonProcess,
        platform: Any,
        autostart_command: Sequence[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.output_dir = output_dir
        self.daemon = daemon
        self.platform = platform
        self.autostart_command = list(autostart_command)
        self.clock = clock
        self.snapshot = Snapshot(DaemonState.STOPPED)
        self.observers: list[Observer] = []
        self._lock = threading.RLock()
        self._started_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- watching --------------------------------------------------------------------------

    def connect(self) -> Client:
        """A client of the daemon found through the discovery file (DaemonNotRunning if none)."""
        return Client(runtime_dir=self.runtime_dir, timeout=5.0)

    def startup(self, start_daemon: bool = True) -> Snapshot:
        """Attach to a running daemon, else start one as a child; returns the first snapshot."""
        snapshot = self.refresh()
        if not snapshot.running and start_daemon:
            self.start_daemon()
            snapshot = self.snapshot
        return snapshot

    def refresh(self) -> Snapshot:
        """Observe the daemon once, publish the snapshot if it changed, and return it."""
        with self._lock:
            restarting = self.daemon.poll() if self.daemon.wanted else False
            owned = self.daemon.wanted
            try:
                with self.connect() as client:
                    queue = client.queue()
                    health = client.health()
                if owned and not self.daemon.alive:
                    # Our child died and another daemon answers (one started by systemd or by
                    # hand at the same time won the instance lock): attach to it instead of
                    # restarting a child it refuses, again and again.
                    log.info("another daemon answers: attached to it")
                    self.daemon.stop()
                    owned = False
                snapshot = snapshot_from_queue(queue, owned=owned)
                self._started_at = None
                if health.status != "ok":  # answering, but unable to run jobs (no worker starts)
                    problem = health.problem or f"the daemon reports {health.status}"
                    snapshot = Snapshot(
                        DaemonState.ERROR, owned=owned, message=problem, answering=True
                    )
            except ApiError as exc:
                snapshot = Snapshot(DaemonState.ERROR, owned=owned, message=str(exc))
            except ImpastoError as exc:  # not running, or not answering (yet)
                snapshot = self._unreachable(exc, restarting, owned)
            self._publish(snapshot)
            return snapshot

    def _unreachable(self, exc: ImpastoError, restarting: bool, owned: bool) -> Snapshot:
        if restarting:
            return Snapshot(
                DaemonState.ERROR,
                owned=owned,
                message=f"{self.daemon.exit_message()}; restarting",
            )
        if self.daemon.alive:
            started = self._started_at if self._started_at is not None else self.clock()
            self._started_at = started
            if self.clock() - started > START_TIMEOUT:
                return Snapshot(DaemonState.ERROR, owned=owned, message=f"no answer: {exc}")
            return Snapshot(DaemonState.STARTING, owned=owned)
        return Snapshot(DaemonState.STOPPED)

    def _publish(self, snapshot: Snapshot) -> None:
        if snapshot == self.snapshot:
            return
        if snapshot.state is not self.snapshot.state or snapshot.message != self.snapshot.message:
            # Changes of state only: progress moves several times a second.
            log.info("%s", snapshot.status_line)
        self.snapshot = snapshot
        for observer in list(self.observers):
            try:
                observer(snapshot)
            except Exception:  # one broken view must not stop the watching
                log.exception("tray observer failed")

    def watch(self, interval: float = 0.5) -> None:
        """Refresh every ``interval`` seconds in a background thread until ``close()``."""

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.refresh()
                except Exception:  # keep watching whatever one poll hit
                    log.exception("tray refresh failed")

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="impasto-tray-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the watching thread."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)

    # -- menu actions ----------------------------------------------------------------------

    def ui_url(self) -> str:
        """The web UI's address, with ``?token=`` when the daemon has one."""
        with self.connect() as client:
            endpoint = client.endpoint
        return f"{endpoint.url}/?token={endpoint.token}" if endpoint.token else f"{endpoint.url}/"

    def open_ui(self) -> None:
        """Open the web UI in the default browser."""
        try:
            self.platform.open_url(self.ui_url())
        except DaemonNotRunning:
            log.warning("the daemon is not running: nothing to open")
        except OSError as exc:  # no xdg-open, or IMPASTO_TRAY_OPENER names no program
            log.warning("cannot open the web UI: %s", exc)

    def open_outputs(self) -> None:
        """Show the outputs folder, created if missing (absolute: never read as an option)."""
        folder = self.output_dir.absolute()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.platform.open_path(str(folder))
        except OSError as exc:  # not a folder, not writable, or no opener
            log.warning("cannot open the outputs folder %s: %s", folder, exc)

    def start_daemon(self) -> None:
        """Start the daemon as this tray's child, unless one already answers."""
        with self._lock:
            if self.snapshot.running:
                return
            self.daemon.start()
            self._started_at = self.clock()
        self.refresh()

    @property
    def can_stop(self) -> bool:
        """A stop is possible: our child, or an attached daemon we can signal (not Windows)."""
        return self.daemon.wanted or (self.snapshot.running and sys.platform != "win32")

    def stop_daemon(self) -> None:
        """Stop the daemon gracefully: our child, or an attached one through its discovery pid."""
        with self._lock:
            if self.daemon.wanted:
                self.daemon.stop()
            elif self.snapshot.running and sys.platform != "win32":
                with contextlib.suppress(DaemonNotRunning, ProcessLookupError):
                    info = read_discovery_file(self.runtime_dir / "daemon.json")
                    os.kill(info.pid, signal.SIGTERM)
                    self._wait_gone(info.pid)
        self.refresh()

    def _wait_gone(self, pid: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.runtime_dir / "daemon.json").exists():
            time.sleep(0.1)

    def toggle_daemon(self) -> None:
        """Start or stop, whichever the menu offers now."""
        if self.snapshot.running or self.daemon.wanted:
            self.stop_daemon()
        else:
            self.start_daemon()

    def toggle_pause(self) -> None:
        """Pause the queue (running jobs finish) or resume it."""
        try:
            with self.connect() as client:
                if self.snapshot.paused:
                    client.resume()
                else:
                    client.pause()
        except ImpastoError as exc:
            log.warning("pause/resume failed: %s", exc)
        self.refresh()

    @property
    def autostart(self) -> bool:
        """Whether the tray starts at login."""
        return bool(self.platform.autostart_enabled())

    def toggle_autostart(self) -> None:
        """Add or remove the start-at-login entry."""
        self.platform.set_autostart(not self.autostart, self.autostart_command)

    def quit(self) -> None:
        """Stop watching, and stop the daemon only if this tray started it."""
        self.close()
        with self._lock:
            if self.daemon.wanted:
                self.daemon.stop()
