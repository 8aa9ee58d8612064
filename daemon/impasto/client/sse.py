"""An incremental Server-Sent Events decoder (the WHATWG event-stream format)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched message: its type, its data lines joined by newlines, and its id."""

    event: str
    data: str
    id: str | None


class SSEDecoder:
    """Feed raw bytes in any chunking; get whole messages back as they complete."""

    def __init__(self) -> None:
        self._pending = b""
        self._event = ""
        self._data: list[str] = []
        self._last_id: str | None = None
        self._skip_lf = False

    @property
    def last_id(self) -> str | None:
        """The last id the stream set, to resume from after a dropped connection."""
        return self._last_id

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume a chunk; return the messages completed by it."""
        if not chunk:
            return []
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across chunks
        self._skip_lf = False
        buffer = self._pending + chunk
        messages: list[ServerSentEvent] = []
        start = 0
        while True:
            ends = [i for i in (buffer.find(b"\r", start), buffer.find(b"\n", start)) if i != -1]
            if not ends:
                break
            end = min(ends)
            message = self._line(buffer[start:end].decode("utf-8", errors="replace"))
            if message is not None:
                messages.append(message)
            start = end + 1
            if buffer[end : end + 1] == b"\r":
                if start == len(buffer):
                    self._skip_lf = True  # a CR ends the line now; an LF next would be its pair
                elif buffer[start : start + 1] == b"\n":
                    start += 1
        self._pending = buffer[start:]
        return messages

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, used by servers as a heartbeat
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(event=event or "message", data="\n".join(data), id=self._last_id)
