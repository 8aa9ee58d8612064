"""A private Xvfb display, and a minimal system tray (the XEmbed dock protocol) on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

DOCK_REQUEST = 0  # SYSTEM_TRAY_REQUEST_DOCK


def free_display() -> int:
    """A display number with neither a lock file nor a socket."""
    for number in range(90, 200):
        if (
            not Path(f"/tmp/.X{number}-lock").exists()
            and not Path(f"/tmp/.X11-unix/X{number}").exists()
        ):
            return number
    raise RuntimeError("no free X display number")


class Xvfb:
    """``Xvfb :N`` started now; ``stop()`` ends it."""

    def __init__(self, log: Path) -> None:
        binary = shutil.which("Xvfb")
        if binary is None:
            raise RuntimeError("Xvfb is not installed: apt-get install -y xvfb xauth")
        self.number = free_display()
        self.name = f":{self.number}"
        self.process = subprocess.Popen(
            [binary, self.name, "-screen", "0", "640x480x24", "-nolisten", "tcp"],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{self.number}").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Xvfb did not start:\n{log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class FakeSystemTray:
    """Owns _NET_SYSTEM_TRAY_S0 and embeds every icon that asks to dock, as a panel would."""

    def __init__(self, display_name: str) -> None:
        from Xlib import X, display

        self.X = X
        self.display = display.Display(display_name)
        screen = self.display.screen()
        self.window = screen.root.create_window(
            0, 0, 128, 64, 0, screen.root_depth, background_pixel=screen.black_pixel
        )
        self.window.map()
        self.opcode = self.display.intern_atom("_NET_SYSTEM_TRAY_OPCODE")
        selection = self.display.intern_atom(
            f"_NET_SYSTEM_TRAY_S{self.display.get_default_screen()}"
        )
        self.window.set_selection_owner(selection, X.CurrentTime)
        self.display.flush()
        self.docked: list[int] = []
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop:
            while self.display.pending_events():
                event = self.display.next_event()
                if event.type == self.X.ClientMessage and event.client_type == self.opcode:
                    _, data = event.data
                    if data[1] == DOCK_REQUEST:
                        self._embed(data[2])
            time.sleep(0.02)

    def _embed(self, window_id: int) -> None:
        icon = self.display.create_resource_object("window", window_id)
        icon.reparent(self.window, 0, 0)
        icon.configure(width=64, height=64)
        icon.map()
        self.display.flush()
        self.docked.append(window_id)

    def close(self) -> None:
        """Stop answering and disconnect."""
        self._stop = True
        self._thread.join(5)
        self.display.close()


class IconWindow:
    """Reads a docked icon's title and pixels through its own X connection."""

    def __init__(self, display_name: str, window_id: int) -> None:
        from Xlib import X, display

        self.X = X
        self.display = display.Display(display_name)
        self.window: Any = self.display.create_resource_object("window", window_id)

    def title(self) -> str:
        """WM_NAME, which pystray's X backend sets to the tooltip."""
        name = self.window.get_wm_name()
        return name.decode() if isinstance(name, bytes) else str(name or "")

    def pixels(self) -> np.ndarray:
        """The window's pixels as an RGB array."""
        geometry = self.window.get_geometry()
        raw = self.window.get_image(
            0, 0, geometry.width, geometry.height, self.X.ZPixmap, 0xFFFFFFFF
        ).data
        bgrx = np.frombuffer(raw, np.uint8).reshape(geometry.height, geometry.width, 4)
        return bgrx[..., 2::-1]

    def close(self) -> None:
        """Disconnect."""
        self.display.close()


def screenshot(display_name: str, target: Path) -> bool:
    """Save the whole screen with ImageMagick's `import` when it is installed."""
    if shutil.which("import") is None:
        return False
    env = dict(os.environ, DISPLAY=display_name)
    result = subprocess.run(
        ["import", "-window", "root", str(target)], env=env, capture_output=True, timeout=30
    )
    return result.returncode == 0
