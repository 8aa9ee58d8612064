"""The bundled UI's files: small, offline (nothing fetched from other hosts), served at /."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import httpx

from impasto.resources import ui_static_dir
from impasto.wire import LIMITS

BUDGET = 200 * 1024
# Anything the page could load from elsewhere: absolute URLs in markup, CSS or imports.
REMOTE = re.compile(
    r"""(?:src|href|url\(|import|from)\s*=?\s*["'(]?\s*(?:https?:)?//""", re.IGNORECASE
)


def test_js_and_css_fit_the_size_budget() -> None:
    files = [p for p in ui_static_dir().rglob("*") if p.suffix in {".js", ".css"}]
    total = sum(p.stat().st_size for p in files)
    assert files and total < BUDGET, f"{total} bytes of JS and CSS"


def test_nothing_is_loaded_from_the_network() -> None:
    for path in ui_static_dir().rglob("*"):
        if path.suffix in {".html", ".js", ".css", ".svg"}:
            text = path.read_text()
            # The SVG namespace is an identifier, not a fetch.
            text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
            assert not REMOTE.search(text), f"{path.name} refers to another host"


def test_daemon_serves_every_module_the_page_imports(impasto_daemon: Any) -> None:
    root = ui_static_dir()
    with httpx.Client(base_url=impasto_daemon.url) as client:
        index = client.get("/")
        assert index.status_code == 200 and "<title>Impasto</title>" in index.text
        for path in [*root.rglob("*.js"), *root.rglob("*.css")]:
            response = client.get("/" + path.relative_to(root).as_posix())
            assert response.status_code == 200, path
            if path.suffix == ".js":
                # Browsers refuse ES modules served with a non-JavaScript type.
                assert "javascript" in response.headers["content-type"], path


def test_files_are_compressed_revalidated_and_answer_head(impasto_daemon: Any) -> None:
    root = ui_static_dir()
    paths = ["/", *("/" + p.relative_to(root).as_posix() for p in root.rglob("*.js"))]
    with httpx.Client(base_url=impasto_daemon.url) as client:
        for path in [*paths, "/css/app.css", "/schema-assets/swagger-ui.css"]:
            response = client.get(path, headers={"Accept-Encoding": "gzip"})
            assert response.status_code == 200, path
            size = int(response.headers["content-length"])
            if len(response.content) > 1000:
                assert response.headers.get("content-encoding") == "gzip", path
                assert size < len(response.content), path  # what was sent is the gzip
            assert response.headers["cache-control"] == "no-cache", path
            etag = response.headers["etag"]
            again = client.get(path, headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.content == b"", path
            assert again.headers["etag"] == etag
            # RFC 9110's list, weak comparison and "*", read as the image route reads them.
            for header in (f'"other", {etag}', f"W/{etag}", "*"):
                listed = client.get(path, headers={"If-None-Match": header})
                assert listed.status_code == 304, (path, header)
            changed = client.get(path, headers={"If-None-Match": '"other"'})
            assert changed.status_code == 200, path
            head = client.head(path)
            assert head.status_code == 200 and head.content == b"", path
            assert head.headers["content-type"] == response.headers["content-type"], path
        # The API stays uncompressed: small JSON, PNGs, and an event stream that must flow.
        health = client.get("/api/v1/health", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in health.headers


FILLED_BY_THE_PAGE = {"schedule", "hires_schedule", "hires_upscaler"}
"""Selects whose written option is a placeholder the page replaces (from the API)."""


class _Selects(HTMLParser):
    """Each ``<select>``'s id and the values of the options written in the page."""

    def __init__(self) -> None:
        super().__init__()
        self.current: str | None = None
        self.options: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "select":
            self.current = found.get("id")
            self.options[self.current or ""] = []
        elif tag == "option" and self.current:
            self.options[self.current].append(found.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.current = None


def test_each_written_choice_list_is_the_request_schemas() -> None:
    """A select for a request field of named values whose options the page writes out (the
    others are filled from the API) offers exactly the schema's values, so a value added to
    the API shows in the form ('' is the page's "the default" where the field may be null)."""
    parser = _Selects()
    parser.feed((ui_static_dir() / "index.html").read_text())
    written = {
        field: [value for value in values if value]
        for field, values in parser.options.items()
        if field in LIMITS and LIMITS[field].choices and field not in FILLED_BY_THE_PAGE
    }
    assert {"resize_mode", "masked_content", "img2img_steps", "rng"} <= set(written)
    for field, values in written.items():
        assert values == list(LIMITS[field].choices or []), field
