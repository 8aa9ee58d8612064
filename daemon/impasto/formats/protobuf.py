"""The protobuf wire format, just enough to walk an ONNX file's messages by field number and to
write the few fields a graph rewrite adds.

The ``onnx`` package is not a runtime dependency; the engine (external data, graph
initializers) and the services (model detection) read the few fields they need with this.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeAlias, TypeVar

Buffer: TypeAlias = memoryview | bytes | mmap.mmap
T = TypeVar("T")


class ProtobufError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_mapped(path: Path, reader: Callable[[memoryview], T]) -> T:
    """``reader`` run on the file memory-mapped, so weights it skips are never read; an empty
    file is a ProtobufError.

    The map is closed on the way out. An error ``reader`` raises leaves without its traceback:
    the traceback's frames hold slices of the map, and while they live the map cannot close,
    so the reader's error (a truncated file's ProtobufError) would be lost to a BufferError.
    """
    with path.open("rb") as handle:
        if path.stat().st_size == 0:
            raise ProtobufError(f"{path.name} is empty")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            failure: Exception | None = None
            try:
                return reader(view)
            except Exception as exc:
                failure = _without_frames(exc)
            finally:
                view.release()
    assert failure is not None
    raise failure


def _without_frames(exc: BaseException) -> Exception:
    """``exc`` (an Exception) with the tracebacks of it and of its causes dropped."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    assert isinstance(exc, Exception)
    return exc


_UNSIGNED_64 = 1 << 64


def varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(buf: Buffer, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, value start, value end) of one message's fields."""
    pos = start
    while pos < end:
        key, pos = varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, next_pos = varint(buf, pos, end)
        elif wire == 1:
            next_pos = pos + 8
        elif wire == 2:
            length, pos = varint(buf, pos, end)
            next_pos = pos + length
        elif wire == 5:
            next_pos = pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        if next_pos > end:
            raise ProtobufError("field runs past the end of its message")
        yield number, wire, pos, next_pos
        pos = next_pos


def submessages(buf: Buffer, start: int, end: int, number: int) -> list[tuple[int, int]]:
    """(start, end) of every length-delimited field ``number`` of one message."""
    return [(s, e) for n, w, s, e in fields(buf, start, end) if n == number and w == 2]


def int_field(buf: Buffer, start: int, end: int, number: int) -> int | None:
    """The first varint field ``number`` of one message, or None."""
    for n, w, s, e in fields(buf, start, end):
        if n == number and w == 0:
            return varint(buf, s, e)[0]
    return None


def string_field(buf: Buffer, start: int, end: int, number: int) -> str:
    """The first length-delimited field ``number`` of one message as text, or ""."""
    for n, w, s, e in fields(buf, start, end):
        if n == number and w == 2:
            return text(buf, s, e)
    return ""


def text(buf: Buffer, start: int, end: int) -> str:
    """A string field's bytes as UTF-8 (undecodable bytes replaced, never raised)."""
    return bytes(buf[start:end]).decode("utf-8", "replace")


def repeated_varints(buf: Buffer, wire: int, start: int, end: int) -> list[int]:
    """One occurrence of a repeated varint field: packed (wire type 2) or a single value."""
    if wire != 2:
        return [varint(buf, start, end)[0]]
    values, pos = [], start
    while pos < end:
        value, pos = varint(buf, pos, end)
        values.append(value)
    return values


def encode_varint(value: int) -> bytes:
    """``value`` as a varint; a negative one as protobuf writes an int64 (ten bytes)."""
    value %= 1 << 64
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field ``number`` (wire type 2) holding ``payload``."""
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def signed(value: int) -> int:
    """A varint read as protobuf's int64 (negative numbers are ten-byte two's complement)."""
    return value - _UNSIGNED_64 if value >= 1 << 63 else value


def encode_key(number: int, wire: int) -> bytes:
    """The key of field ``number`` with wire type ``wire``."""
    return encode_varint(number << 3 | wire)


def encode_string(number: int, value: str) -> bytes:
    """Field ``number`` holding ``value`` as UTF-8."""
    return length_delimited(number, value.encode("utf-8"))
