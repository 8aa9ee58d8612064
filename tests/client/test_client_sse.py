"""The SSE decoder: framing, comments, multi-line data, ids, any chunking."""

from __future__ import annotations

import pytest

from impasto.client.sse import ServerSentEvent, SSEDecoder

STREAM = (
    b": connected\n\n"
    b'id: 7\nevent: progress\ndata: {"a":\ndata:  1}\n\n'
    b":heartbeat\r\n\r\n"
    b"event: queue\r\ndata:x\r\n\r\n"
    b"id: 9\rdata: last\r\r"
)
EXPECTED = [
    ServerSentEvent(event="progress", data='{"a":\n 1}', id="7"),
    ServerSentEvent(event="queue", data="x", id="7"),
    ServerSentEvent(event="message", data="last", id="9"),
]


def test_whole_stream_decodes_messages_and_skips_comments() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(STREAM) == EXPECTED
    assert decoder.last_id == "9"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_any_chunking_gives_the_same_messages(size: int) -> None:
    # Splits land inside CRLF pairs, field names and UTF-8 sequences alike.
    decoder = SSEDecoder()
    messages = []
    for start in range(0, len(STREAM), size):
        messages += decoder.feed(STREAM[start : start + size])
    assert messages == EXPECTED


def test_incomplete_message_waits_for_the_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: half\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent("message", "half", None)]


def test_unicode_line_separators_inside_data_do_not_split_lines() -> None:
    text = 'data: {"prompt": "a\u2028b\u0085c"}\n\n'
    assert SSEDecoder().feed(text.encode()) == [ServerSentEvent("message", text[6:-2], None)]


def test_message_without_data_is_not_dispatched() -> None:
    assert SSEDecoder().feed(b"event: ping\nid: 3\n\n") == []
