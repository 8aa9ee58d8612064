"""The tray icon's pictures, drawn with Pillow at run time: one look per daemon state."""

from __future__ import annotations

from PIL import Image, ImageDraw

from impasto_tray.state import DaemonState, Snapshot

SIZE = 64

# A colour per state, readable on light and dark panels alike.
COLOURS: dict[DaemonState, tuple[int, int, int]] = {
    DaemonState.STOPPED: (128, 128, 128),
    DaemonState.STARTING: (90, 140, 200),
    DaemonState.IDLE: (46, 160, 90),
    DaemonState.GENERATING: (60, 120, 230),
    DaemonState.PAUSED: (230, 160, 30),
    DaemonState.ERROR: (215, 50, 50),
}


def render(snapshot: Snapshot, size: int = SIZE) -> Image.Image:
    """The icon of ``snapshot``: a palette disc in the state's colour with a state mark."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    colour = COLOURS[snapshot.state]
    pad = size // 16
    box = (pad, pad, size - pad - 1, size - pad - 1)
    if snapshot.state is DaemonState.STOPPED:
        # Hollow: nothing runs.
        draw.ellipse(box, outline=colour, width=max(2, size // 10))
        return image
    draw.ellipse(box, fill=colour)
    white = (255, 255, 255, 255)
    middle = size // 2
    if snapshot.state is DaemonState.GENERATING:
        # A white pie that fills as the steps advance.
        inner = (size // 4, size // 4, size - size // 4 - 1, size - size // 4 - 1)
        fraction = snapshot.step / snapshot.total if snapshot.total else 0.0
        draw.ellipse(inner, outline=white, width=max(1, size // 32))
        if fraction > 0:
            draw.pieslice(inner, -90, -90 + 360 * min(fraction, 1.0), fill=white)
    elif snapshot.state is DaemonState.PAUSED:
        bar = size // 8
        for left in (middle - 2 * bar, middle + bar):
            draw.rectangle((left, size // 3, left + bar, size - size // 3), fill=white)
    elif snapshot.state is DaemonState.ERROR:
        width = size // 10
        draw.rectangle((middle - width // 2, size // 4, middle + width // 2, size // 2 + 4), white)
        draw.ellipse(
            (middle - width // 2, size * 5 // 8, middle + width // 2, size * 3 // 4), white
        )
    else:
        # Idle and starting: a small paint dab in the middle.
        dab = size // 8
        draw.ellipse((middle - dab, middle - dab, middle + dab, middle + dab), fill=white)
    return image
