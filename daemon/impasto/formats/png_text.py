"""PNG text chunks (tEXt, zTXt, iTXt) read from the bytes alone, never decoding a pixel.

Opening a PNG with Pillow and asking for ``.text`` decodes the whole image to reach chunks
written after the pixel data: a 13000x13000 upload costs 645 MB and seconds of CPU for a few
bytes of text. Walking the chunk list costs nothing, and compressed text is inflated with a cap.
"""

from __future__ import annotations

import io
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_CHUNK = 1024 * 1024  # the most one text chunk may unpack to (Pillow's limit too)
MAX_TEXT_TOTAL = 8 * 1024 * 1024  # the most all text chunks together may unpack to
MAX_CHUNKS = 100_000


class PngTextError(ValueError):
    """The bytes are not a PNG, or its text is malformed or over the limits; says which."""


def is_png(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE)


def _inflate(data: bytes, key: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_TEXT_CHUNK)
    except zlib.error as exc:
        raise PngTextError(f"the compressed text chunk {key!r} is corrupt") from exc
    if inflater.unconsumed_tail:
        raise PngTextError(f"the text chunk {key!r} unpacks to more than {MAX_TEXT_CHUNK} bytes")
    return out


def _text_chunk(kind: bytes, body: bytes) -> tuple[str, str] | None:
    raw_key, sep, rest = body.partition(b"\0")
    if not sep or not 1 <= len(raw_key) <= 79:
        return None  # malformed: skipped, like other readers do
    key = raw_key.decode("latin-1")
    if kind == b"tEXt":
        return key, rest.decode("latin-1")
    if kind == b"zTXt":
        if not rest or rest[0] != 0:
            return None
        return key, _inflate(rest[1:], key).decode("latin-1")
    # iTXt: compression flag, method, language tag \0, translated keyword \0, text (UTF-8)
    if len(rest) < 2:
        return None
    compressed, method, rest = rest[0], rest[1], rest[2:]
    _, _, rest = rest.partition(b"\0")
    _, _, text = rest.partition(b"\0")
    if compressed:
        if method != 0:
            return None
        text = _inflate(text, key)
    return key, text.decode("utf-8", errors="replace")


def png_text(data: bytes) -> dict[str, str]:
    """Every text chunk of a PNG by keyword (the first of each), reading no pixel data."""
    if not is_png(data):
        raise PngTextError("not a PNG file")
    stream = io.BytesIO(data)
    stream.seek(len(PNG_SIGNATURE))
    found: dict[str, str] = {}
    total = 0
    for _ in range(MAX_CHUNKS):
        head = stream.read(8)
        if len(head) < 8:
            break  # truncated: keep what was read
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            stream.seek(length + 4, io.SEEK_CUR)  # the data and its CRC, unread
            continue
        if length > MAX_TEXT_CHUNK:
            raise PngTextError(f"a text chunk of {length} bytes is over {MAX_TEXT_CHUNK}")
        body = stream.read(length)
        stream.seek(4, io.SEEK_CUR)
        if len(body) < length:
            break
        item = _text_chunk(kind, body)
        if item is None:
            continue
        total += len(item[1])
        if total > MAX_TEXT_TOTAL:
            raise PngTextError(f"the text chunks hold more than {MAX_TEXT_TOTAL} bytes")
        found.setdefault(*item)
    return found


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def with_text(data: bytes, key: str, text: str) -> bytes:
    """The PNG with its ``key`` text chunk (each one) replaced by ``text``, where the first was,
    else before the pixel data; reading and re-encoding no pixel. Latin-1 text is a tEXt chunk,
    other text an iTXt one, as Pillow and A1111 write them."""
    if not is_png(data):
        raise PngTextError("not a PNG file")
    name = key.encode("latin-1")
    try:
        new = _chunk(b"tEXt", name + b"\0" + text.encode("latin-1"))
    except UnicodeEncodeError:  # keyword, no compression, no language or translated keyword
        new = _chunk(b"iTXt", name + b"\0\0\0\0\0" + text.encode("utf-8"))
    parts = [data[: len(PNG_SIGNATURE)]]
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        body = data[pos + 8 : pos + 8 + length]
        is_key = kind in (b"tEXt", b"zTXt", b"iTXt") and body.partition(b"\0")[0] == name
        if is_key or (kind in (b"IDAT", b"IEND") and new):
            parts.append(new)
            new = b""
        if not is_key:
            parts.append(data[pos:end])
        pos = end
    return b"".join(parts) + data[pos:]
