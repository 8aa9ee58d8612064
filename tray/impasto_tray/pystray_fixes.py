"""pystray's Icon class for the chosen backend, with the faults that users met fixed.

- ``xorg``: pystray asks the tray to dock the icon again on every picture change, so trayer
  re-embeds it each time (at one pixel wide, once its panel shrank to fit); it never docks
  into a tray that starts after it (tint2 at login); and it logs an ``AssertionError``
  traceback for every update while no tray is there. Here it docks once, again when a tray
  manager announces itself (the ``MANAGER`` message of the system tray spec), and says
  nothing per update. Its click (open the web UI) never arrived: it did not ask X for
  button presses. It also keeps the picture round instead of stretching it to the slot, and
  goes quietly when the X server went first (pystray's clean-up raised at exit).
- ``gtk``: the hover text went to ``set_title`` (an accessibility name), not the tooltip.
- ``gtk`` and ``appindicator``: Quit raised when no notification service runs.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)


def icon_class(pystray: ModuleType) -> Any:
    """``pystray.Icon``, subclassed with the fixes for its backend."""
    base: Any = pystray.Icon
    module = base.__module__
    if module.endswith("._xorg"):
        return _xorg_icon(base)
    if module.endswith("._gtk"):
        return _gtk_icon(base, status_icon=True)
    if module.endswith("._appindicator"):
        return _gtk_icon(base, status_icon=False)
    return base


def _gtk_icon(base: Any, *, status_icon: bool) -> Any:
    from gi.repository import GLib

    class GtkIcon(base):
        def _update_title(self) -> None:
            super()._update_title()
            if status_icon:
                # Gtk.StatusIcon's hover text is its tooltip, not its title.
                GLib.idle_add(self._status_icon.set_tooltip_text, self.title)

        def _finalize(self) -> None:
            try:
                super()._finalize()
            except GLib.Error as exc:  # org.freedesktop.Notifications is optional
                log.debug("pystray finalize: %s", exc)

    return GtkIcon


def _xorg_icon(base: Any) -> Any:
    import Xlib.error
    import Xlib.X
    from PIL import Image

    class XorgIcon(base):
        _systray_manager: Any
        _icon_data: Any

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._manager_atom = self._display.intern_atom("MANAGER")
            # Tray managers announce themselves to the root window's StructureNotify clients.
            self._display.screen().root.change_attributes(event_mask=Xlib.X.StructureNotifyMask)
            # pystray handles clicks but never asks X for them.
            self._window.change_attributes(
                event_mask=Xlib.X.ExposureMask | Xlib.X.StructureNotifyMask | Xlib.X.ButtonPressMask
            )
            self._display.flush()
            pystray_messages = self._message_handlers[Xlib.X.ClientMessage]

            def on_client_message(event: Any) -> None:
                if event.client_type == self._manager_atom:
                    if self._systray_manager is None and self._dock():
                        self._icon_data = None
                        self._draw()
                else:
                    pystray_messages(event)

            self._message_handlers[Xlib.X.ClientMessage] = on_client_message

        def _dock(self) -> bool:
            """Dock unless docked; True when docked."""
            if self._systray_manager is None:
                self._dock_window()
            return self._systray_manager is not None

        def _show(self) -> None:
            self._dock()

        def _update_icon(self) -> None:
            self._icon_data = None
            self._icon_valid = True
            if self._dock():
                self._draw()

        def _assert_icon_data(self, width: int, height: int) -> None:
            # pystray stretches the picture to the slot; keep it round, centred in it.
            if self._icon_data is not None and self._icon_data.size == (width, height):
                return
            side = max(1, min(width, height))
            picture = self._icon.convert("RGBA").resize((side, side), Image.Resampling.LANCZOS)
            data = Image.new("RGB", (width, height))
            data.paste(picture, ((width - side) // 2, (height - side) // 2), picture)
            setattr(data, "tostring", data.tobytes)  # noqa: B010 - python-xlib calls tostring()
            self._icon_data = data

        def __del__(self) -> None:
            # pystray closes its X connection when the icon goes; if the X server went first
            # (the session ended) that raised into Python's "Exception ignored" at exit.
            try:
                super().__del__()
            except (Xlib.error.ConnectionClosedError, OSError) as exc:
                log.debug("X display already gone: %s", exc)

        def _on_destroy_notify(self, event: Any) -> None:
            manager = self._systray_manager
            if manager is None or event.window.id != manager.id:
                return
            # The tray went away: wait for the next one's MANAGER message.
            self._systray_manager = None
            self._dock()

    return XorgIcon
