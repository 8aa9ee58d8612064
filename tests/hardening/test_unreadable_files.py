"""A file the daemon may not read (a web UI file, an output) is a 403, as web servers answer
it, not Litestar's 401 or a 500.

A 401 asks the client for credentials, which cannot help: the daemon's own file is unreadable.
The tests run as root here, which reads any file whatever its mode, so the OS's answers are
given at the seams where it would give them: a PermissionError from the stat (a folder the
daemon may not enter), and ``os.access`` saying no (a file of mode 000, which can be looked up
but not opened; opening comes after the status is sent, so it must be found before).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from PIL import Image

from impasto.api import static
from impasto.api.app import create_app
from impasto.api.static import static_routers
from tests.api.conftest import make_services


@pytest.fixture
def ui(tmp_path: Path) -> Path:
    ui_dir = tmp_path / "ui"
    (ui_dir / "js").mkdir(parents=True)
    (ui_dir / "index.html").write_text("<!doctype html><title>Impasto</title>")
    (ui_dir / "js" / "app.js").write_text("export {};")
    (tmp_path / "docs").mkdir()
    return ui_dir


def _client(ui: Path) -> TestClient[Litestar]:
    return TestClient(Litestar(route_handlers=static_routers(ui, ui.parent / "docs")))


def _denied(*args: Any, **kwargs: Any) -> Any:
    raise PermissionError(13, "Permission denied")


def test_readable_files_are_served(ui: Path) -> None:
    with _client(ui) as client:
        assert client.get("/").text.startswith("<!doctype html>")
        assert client.get("/js/app.js").text == "export {};"


@pytest.mark.parametrize("where", ["stat", "mode"])
@pytest.mark.parametrize("path", ["/", "/index.html", "/js/app.js"])
def test_a_file_the_daemon_may_not_read_is_forbidden(
    ui: Path, monkeypatch: pytest.MonkeyPatch, where: str, path: str
) -> None:
    with _client(ui) as client:
        if where == "stat":
            monkeypatch.setattr(static.os, "stat", _denied)
        else:
            monkeypatch.setattr(static.os, "access", lambda path, mode: False)
        response = client.get(path)
        monkeypatch.undo()
    assert response.status_code == 403, response.text
    assert "permissions" in response.json()["detail"]
    assert "www-authenticate" not in response.headers


def test_an_output_the_daemon_may_not_read_is_forbidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = make_services(tmp_path)
    try:
        with TestClient(app=create_app(services)) as client:
            job = client.post("/api/v1/generate", json={"prompt": "x"}).json()
            assert services.jobs.store.claim_next("worker-0").id == job["id"]
            png = services.paths.output_dir / "out.png"
            Image.new("RGB", (64, 64)).save(png)
            result = {"index": 0, "path": str(png), "seed": 1, "width": 64, "height": 64}
            services.jobs.store.mark_completed(job["id"], [result])
            url = f"/api/v1/images/{job['id']}/0"
            assert client.get(url).content == png.read_bytes()
            assert client.get(url, params={"thumb": 32}).headers["content-type"] == "image/jpeg"
            monkeypatch.setattr(Path, "read_bytes", _denied)
            monkeypatch.setattr(Image, "open", _denied)
            for params in ({}, {"thumb": 32}):
                response = client.get(url, params=params)
                assert response.status_code == 403, response.text
                assert "permissions" in response.json()["detail"]
    finally:
        services.extra["db"].close()
