"""The opaque cursors of the job history listing: where the next page starts."""

from __future__ import annotations

import base64
import binascii
import json

from impasto.wire import SEQ_MAX


class InvalidCursorError(ValueError):
    """A history cursor was not produced by ``JobStore.history``."""


def encode_cursor(created_at: float, seq: int) -> str:
    """Make the opaque history cursor that points just after the row (created_at, seq)."""
    raw = json.dumps([created_at, seq]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    """Read a cursor made by ``encode_cursor``; raise ``InvalidCursorError`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, seq = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursorError("cursor is not one returned by the history listing") from exc
    if (
        not isinstance(created_at, int | float)
        or not isinstance(seq, int)
        or not -1e18 < created_at < 1e18  # also refuses nan, inf and huge integers
        or not 0 <= seq <= SEQ_MAX  # beyond SQLite's integers: not one of ours
    ):
        raise InvalidCursorError("cursor is not one returned by the history listing")
    return float(created_at), seq
