"""The Impasto tray icon: shows the daemon's state, supervises it, and offers its menu."""

from __future__ import annotations

__all__ = ["main"]


def main() -> int:
    """Run the tray icon until Quit; imports pystray only now (it needs a display)."""
    from impasto_tray.app import run

    return run()
