"""The progress `impasto generate` shows on stderr: a bar on a terminal, lines elsewhere."""

from __future__ import annotations

from typing import TextIO

from impasto.client import Event


class ProgressBar:
    """Progress on a terminal: one text bar redrawn with carriage returns. Anywhere else (a
    log file, a pipe) a plain line at the start and at each tenth of the way, so a log is
    not one line of a thousand redraws."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.drawn = False
        self.live = _is_terminal(stream)
        self.tenth = -1  # the last tenth written as a line (not live)

    def update(self, event: Event) -> None:
        """Redraw for a job event (progress events carry step, total and progress)."""
        if event.type == "started":
            self._draw(0.0, "started")
        elif event.type == "progress":
            fraction = float(event.data.get("progress", 0.0))
            step, total = event.data.get("step", 0), event.data.get("total", 0)
            self._draw(fraction, f"step {step}/{total}")

    def _draw(self, fraction: float, label: str) -> None:
        fraction = max(0.0, min(1.0, fraction))
        if not self.live:
            tenth = int(fraction * 10)
            if tenth != self.tenth:
                self.tenth = tenth
                self.stream.write(f"{fraction * 100:3.0f}% {label}\n")
                self.stream.flush()
            return
        filled = round(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {fraction * 100:3.0f}% {label}   ")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """End the bar's line so later messages start on a fresh one."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
