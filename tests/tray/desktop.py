"""A desktop for the tray tests: a D-Bus session, real tray hosts, the screen and the mouse.

Each tool is a Debian package; a missing one skips the test with the package's name, except
under CI (``CI`` set), where it fails: `.ci/run` installs them all.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.tools import ON_CI

# The XEmbed and StatusNotifierItem hosts the tests run, and the tools that drive them.
PACKAGES = {
    "Xvfb": "xvfb",
    "dbus-daemon": "dbus",
    "trayer": "trayer",
    "tint2": "tint2",
    "status-notifier-watcher": "haskell-status-notifier-item-utils",
    "gtk-sni-tray-standalone": "haskell-gtk-sni-tray-utils",
    "xdotool": "xdotool",
}
GTK_PACKAGES = (
    "apt-get install libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0 "
    "gir1.2-ayatanaappindicator3-0.1; pip install 'impasto[tray-gtk]'"
)


def missing(reason: str) -> None:
    """Skip with ``reason`` locally; fail under CI, where everything must be installed."""
    if ON_CI:
        pytest.fail(f"{reason} (CI installs it: see .ci/test-packages)")
    pytest.skip(reason)


def need(*tools: str) -> None:
    """The programs ``tools`` are on PATH, or the test skips/fails naming their packages."""
    absent = [tool for tool in tools if shutil.which(tool) is None]
    if absent:
        packages = " ".join(PACKAGES.get(tool, tool) for tool in absent)
        missing(f"{', '.join(absent)} not installed: apt-get install {packages}")


def need_gtk() -> None:
    """PyGObject with Gtk 3 and Ayatana AppIndicator, for pystray's menu backends."""
    from impasto_tray.backends import has_appindicator, missing_gtk

    why = missing_gtk()
    if why or not has_appindicator():
        missing(
            f"PyGObject/AppIndicator missing ({why or 'no AyatanaAppIndicator3'}): " + GTK_PACKAGES
        )


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``check()``'s first truthy result, polling; AssertionError naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Processes:
    """Background programs started for one test, stopped (in reverse) by ``close()``."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs = logs
        self.env = env
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, command: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start ``command`` with its output in ``<logs>/<name>.log``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(list(command), env=self.env, stdout=log, stderr=log)
        log.close()
        self.started.append(process)
        return process

    def close(self) -> None:
        """Terminate everything still running."""
        for process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def start_session_bus(processes: Processes) -> str:
    """A private D-Bus session bus; returns its address (also put in ``processes.env``)."""
    processes.logs.mkdir(parents=True, exist_ok=True)
    config = processes.logs / "session.conf"
    config.write_text(
        "<busconfig><type>session</type><listen>unix:tmpdir=/tmp</listen>"
        "<auth>EXTERNAL</auth><policy context='default'><allow send_destination='*'/>"
        "<allow eavesdrop='true'/><allow own='*'/></policy></busconfig>"
    )
    address_file = processes.logs / "bus-address"
    with address_file.open("wb") as out:
        process = subprocess.Popen(
            ["dbus-daemon", "--nofork", f"--config-file={config}", "--print-address=1"],
            env=processes.env,
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
    processes.started.append(process)
    address: str = wait_until(
        lambda: address_file.read_text().strip(), "the D-Bus session bus address"
    )
    processes.env["DBUS_SESSION_BUS_ADDRESS"] = address
    return address


class Screen:
    """The X screen of ``display``: screenshots, windows, mouse and keys (python-xlib)."""

    def __init__(self, display_name: str, env: dict[str, str]) -> None:
        from Xlib import display

        self.name = display_name
        self.env = env
        self.display = display.Display(display_name)
        self.root = self.display.screen().root

    def close(self) -> None:
        """Disconnect."""
        self.display.close()

    def grab(self) -> np.ndarray:
        """The whole screen as an RGB array."""
        from Xlib import X

        geometry = self.root.get_geometry()
        raw = self.root.get_image(0, 0, geometry.width, geometry.height, X.ZPixmap, 0xFFFFFFFF).data
        bgrx = np.frombuffer(raw, np.uint8).reshape(geometry.height, geometry.width, 4)
        return np.ascontiguousarray(bgrx[..., 2::-1])

    def save(self, target: Path) -> None:
        """Write a screenshot as PNG (kept in the test's folder for a look after a failure)."""
        from PIL import Image

        Image.fromarray(self.grab()).save(target)

    def find(
        self, colour: tuple[int, int, int], rows: int = 48, tolerance: int = 40, margin: int = 8
    ) -> tuple[int, int, int, int] | None:
        """The bounding box (left, top, width, height) of the icon drawn in ``colour``: the
        pixels of exactly that colour in the top ``rows`` of the screen (where the tests put
        their panels), grown by the pixels close to it (scaling blurs the edges)."""
        pixels = self.grab()[:rows].astype(np.int16)
        exact = (pixels == np.array(colour, np.int16)).all(axis=2)
        ys, xs = np.nonzero(exact)
        if len(xs) == 0:
            return None  # not drawn in that state (yet)
        top, left = max(0, int(ys.min()) - margin), max(0, int(xs.min()) - margin)
        near = pixels[top : int(ys.max()) + margin + 1, left : int(xs.max()) + margin + 1]
        close = (np.abs(near - np.array(colour, np.int16)) <= tolerance).all(axis=2)
        ys, xs = np.nonzero(close)
        return (
            left + int(xs.min()),
            top + int(ys.min()),
            int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1),
        )

    def popups(self) -> list[tuple[int, int, int, int]]:
        """Mapped override-redirect windows bigger than an icon: open menus."""
        from Xlib import X, error

        found = []
        for window in self.root.query_tree().children:
            try:
                attributes = window.get_attributes()
                if attributes.map_state != X.IsViewable or not attributes.override_redirect:
                    continue
                geometry = window.get_geometry()
            except error.BadWindow:
                continue
            if geometry.width > 60 and geometry.height > 60:
                found.append((geometry.x, geometry.y, geometry.width, geometry.height))
        return found

    def windows_at(self, x: int, y: int) -> list[int]:
        """The ids of the windows under (x, y), from the top-level one down."""
        chain: list[int] = []
        window = self.root
        while True:
            child = window.translate_coords(self.root, x, y).child
            if not child:
                return chain
            chain.append(int(child.id))
            window = child

    def xdotool(self, *args: str) -> None:
        """Run xdotool on this display."""
        env = dict(self.env, DISPLAY=self.name)
        subprocess.run(["xdotool", *args], env=env, check=True, timeout=30)

    def click(self, x: int, y: int, button: int = 1) -> None:
        """Click ``button`` at (x, y), then move the pointer to the bottom left corner, away
        from the icon (its tooltip) and from the menus that open below it."""
        self.xdotool("mousemove", str(x), str(y), "click", str(button))
        self.xdotool("mousemove", "1", str(self.root.get_geometry().height - 2))

    def keys(self, *keys: str) -> None:
        """Press ``keys`` one after the other."""
        for key in keys:
            self.xdotool("key", key)
            time.sleep(0.15)
