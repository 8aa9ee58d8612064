"""Which pystray backend draws the icon, whether a tray host is there to show it, and fixes
for pystray's own backends (imported only once a backend is chosen: they need a display).

On Linux there are two tray protocols. StatusNotifierItem (KDE, GNOME with the AppIndicator
extension, waybar...) is pystray's ``appindicator`` backend; the older XEmbed system tray
(trayer, tint2, stalonetray, XFCE, MATE, LXDE...) is its ``gtk`` backend (Gtk.StatusIcon).
Both need PyGObject and have a menu. Without PyGObject only the ``xorg`` backend is left:
XEmbed, and no menu at all (a click opens the web UI).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

WATCHER = "org.kde.StatusNotifierWatcher"
# The packages that give pystray its menus on Linux (docs/tray.md says how to install them).
MENU_HINT = (
    "for the tray menu install PyGObject: apt-get install libgirepository1.0-dev "
    "libcairo2-dev pkg-config gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1, "
    "then pip install 'impasto[tray-gtk]'"
)
NO_HOST = (
    "no system tray found on this desktop (no StatusNotifierItem watcher on D-Bus and no "
    "XEmbed tray); on GNOME enable the AppIndicator extension "
    "(gnome-shell-extension-appindicator), or run `impasto serve` and use the web UI"
)


class NoDesktop(RuntimeError):
    """There is no desktop session to show an icon in."""


@dataclass(frozen=True)
class Backend:
    """A pystray backend and what it can do."""

    name: str
    has_menu: bool
    # Why a lesser backend was chosen, for the log ("" when nothing is missing).
    note: str = ""


def missing_gtk() -> str:
    """Why PyGObject's Gtk 3 cannot be used here ("" when it can)."""
    try:
        gi = importlib.import_module("gi")
        gi.require_version("Gtk", "3.0")
        importlib.import_module("gi.repository.Gtk")
    except (ImportError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return ""


def has_appindicator() -> bool:
    """libayatana-appindicator (or the older libappindicator) has its typelib installed."""
    gi = importlib.import_module("gi")
    for name in ("AyatanaAppIndicator3", "AppIndicator3"):
        with contextlib.suppress(ValueError, ImportError):
            gi.require_version(name, "0.1")
            importlib.import_module(f"gi.repository.{name}")
            return True
    return False


def session_bus_address(env: Mapping[str, str]) -> str:
    """The D-Bus session bus to use, "" when there is none (GLib would try to launch one)."""
    if env.get("DBUS_SESSION_BUS_ADDRESS"):
        return env["DBUS_SESSION_BUS_ADDRESS"]
    runtime = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    bus = Path(runtime) / "bus"
    return f"unix:path={bus}" if bus.exists() else ""


def sni_watcher_present(env: Mapping[str, str] = os.environ) -> bool:
    """A StatusNotifierWatcher owns its name on the session bus (needs PyGObject)."""
    address = session_bus_address(env)
    if not address or missing_gtk():
        return False
    from gi.repository import Gio, GLib

    try:
        flags = (
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
            | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION
        )
        bus = Gio.DBusConnection.new_for_address_sync(address, flags, None, None)
        reply = bus.call_sync(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            GLib.Variant("(s)", (WATCHER,)),
            GLib.VariantType("(b)"),
            Gio.DBusCallFlags.NONE,
            2000,
            None,
        )
        bus.close_sync(None)
    except GLib.Error:
        return False
    return bool(reply.unpack()[0])


def xembed_tray_present() -> bool:
    """Some window owns the XEmbed system tray selection of the default screen."""
    from Xlib import X, display, error

    try:
        connection = display.Display()
    except (error.DisplayError, OSError):
        return False
    try:
        atom = connection.intern_atom(f"_NET_SYSTEM_TRAY_S{connection.get_default_screen()}")
        return bool(connection.get_selection_owner(atom) != X.NONE)
    finally:
        connection.close()


def choose(env: Mapping[str, str] = os.environ, platform: str = sys.platform) -> Backend:
    """The backend for this session; ``PYSTRAY_BACKEND`` overrides the choice."""
    if platform == "win32":
        return Backend("win32", has_menu=True)
    if platform == "darwin":
        return Backend("darwin", has_menu=True)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        raise NoDesktop("no desktop session here (DISPLAY is not set)")
    forced = env.get("PYSTRAY_BACKEND")
    if forced:
        return Backend(forced, has_menu=forced != "xorg")
    why = missing_gtk()
    if why:
        return Backend("xorg", has_menu=False, note=f"{why}; {MENU_HINT}")
    if not session_bus_address(env):
        why = "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set), which the menu needs"
        return Backend("xorg", has_menu=False, note=why)
    if has_appindicator() and sni_watcher_present(env):
        return Backend("appindicator", has_menu=True)
    return Backend("gtk", has_menu=True)


def host_present(backend: Backend) -> bool:
    """A tray host that shows this backend's icons is running now."""
    if backend.name == "appindicator":
        return sni_watcher_present() or xembed_tray_present()  # it falls back to XEmbed
    if backend.name in ("gtk", "xorg"):
        return xembed_tray_present()
    return True


def wait_for_host(backend: Backend, timeout: float, interval: float = 0.5) -> bool:
    """True as soon as a tray host is present; False after ``timeout`` seconds without one."""
    deadline = time.monotonic() + timeout
    while not host_present(backend):
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True
