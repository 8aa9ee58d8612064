"""upload_image() takes what an editor holds: a path, bytes, a binary file, a PIL image."""

from __future__ import annotations

import asyncio
import io
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import httpx
import pytest
from client_fakes import FakeDaemon
from PIL import Image

from impasto.client import AsyncClient, Client, ImageSource, ImpastoError

UPLOADED = {"id": "up1", "width": 8, "height": 8, "mode": "RGB"}


def png(mode: str = "RGB", size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


def sent_part(daemon: FakeDaemon) -> tuple[str, str, bytes]:
    """The file part of the last request: its file name, content type and bytes."""
    request = daemon.requests[-1]
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    [part] = BytesParser(policy=HTTP).parsebytes(head + request.content).iter_parts()
    return part.get_filename() or "", part.get_content_type(), part.get_payload(decode=True)


def upload(daemon: FakeDaemon, image: ImageSource, filename: str | None = None) -> str:
    daemon.routes[("POST", "/api/v1/images")] = httpx.Response(201, json=UPLOADED)
    with Client(transport=daemon.transport()) as client:
        return client.upload_image(image, filename=filename)


def test_bytes_are_sent_with_the_kind_their_first_bytes_say(daemon: FakeDaemon) -> None:
    data = png()
    assert upload(daemon, data) == "up1"
    assert sent_part(daemon) == ("image.png", "image/png", data)
    upload(daemon, b"\xff\xd8\xff\xe0 jpeg", filename="layer.jpg")
    assert sent_part(daemon)[:2] == ("layer.jpg", "image/jpeg")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "WEBP")
    upload(daemon, buffer.getvalue())
    assert sent_part(daemon)[:2] == ("image.webp", "image/webp")


def test_a_binary_file_is_sent_under_its_own_name(daemon: FakeDaemon, tmp_path: Path) -> None:
    picture = tmp_path / "mask.png"
    picture.write_bytes(png("L"))
    with picture.open("rb") as file:
        upload(daemon, file)
    assert sent_part(daemon) == ("mask.png", "image/png", picture.read_bytes())
    upload(daemon, io.BytesIO(png()))
    assert sent_part(daemon)[:2] == ("image.png", "image/png")


def test_a_text_file_is_refused_before_sending(daemon: FakeDaemon, tmp_path: Path) -> None:
    picture = tmp_path / "x.png"
    picture.write_bytes(b"not read")
    with picture.open() as text, pytest.raises(ImpastoError, match="'rb'"):
        upload(daemon, text)  # type: ignore[arg-type]
    assert daemon.requests == []


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "1", "CMYK"])
def test_a_pil_image_is_sent_as_a_png(daemon: FakeDaemon, mode: str) -> None:
    upload(daemon, Image.new(mode, (16, 8)))
    name, kind, data = sent_part(daemon)
    assert (name, kind) == ("image.png", "image/png")
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "PNG" and decoded.size == (16, 8)


def test_something_else_names_what_it_takes(daemon: FakeDaemon) -> None:
    with pytest.raises(TypeError, match="a path, bytes, a file opened with 'rb' or a PIL image"):
        upload(daemon, 42)  # type: ignore[arg-type]


def test_the_async_client_takes_the_same(async_daemon: FakeDaemon) -> None:
    async_daemon.routes[("POST", "/api/v1/images")] = httpx.Response(201, json=UPLOADED)

    async def run() -> list[str]:
        async with AsyncClient(transport=async_daemon.transport()) as client:
            return [
                await client.upload_image(png()),
                await client.upload_image(Image.new("RGBA", (8, 8)), filename="layer.png"),
            ]

    assert asyncio.run(run()) == ["up1", "up1"]
    assert sent_part(async_daemon)[:2] == ("layer.png", "image/png")
