"""Every API path the docs and the settings' help name is a route the daemon serves."""

from __future__ import annotations

import re
from pathlib import Path

from impasto.api.app import API_PREFIX, build_litestar
from impasto.settings import markdown_table
from tests.api.conftest import make_services

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A path up to the first character that cannot be in one; `{id}` and `<name>` are parameters.
MENTION = re.compile(rf"{API_PREFIX}(?:/(?:[A-Za-z0-9_.-]+|\{{\w+\}}|<\w+>))*")
PARAM = re.compile(r"\{[^}]*\}|<[^>]*>")


def route_paths(tmp_path: Path) -> list[str]:
    services = make_services(tmp_path)
    try:
        app = build_litestar(services)
    finally:
        services.extra["db"].close()
    return [PARAM.sub("*", route.path) for route in app.routes]


def known(path: str, routes: list[str]) -> bool:
    """``path`` is a route, or the start of one (prose names `/api/v1/generate/` prefixes)."""
    parts = PARAM.sub("*", path.rstrip("/.")).split("/")
    for route in routes:
        have = route.split("/")
        if len(parts) <= len(have) and all(
            p == h or "*" in (p, h) for p, h in zip(parts, have, strict=False)
        ):
            return True
    return False


def test_documented_api_paths_exist(tmp_path: Path) -> None:
    routes = route_paths(tmp_path)
    mentions = {
        (doc.name, path)
        for doc in DOCS
        for path in MENTION.findall(doc.read_text())
        if not path.startswith(f"{API_PREFIX}/plugins/")  # routes of installed plugins
    }
    assert len(mentions) > 10
    assert sorted(m for m in mentions if not known(m[1], routes)) == []


def test_settings_help_names_routes_by_their_full_path() -> None:
    # "/health" alone is not a route; the health check is /api/v1/health.
    assert not re.search(r"(?<!/api/v1)/health\b", markdown_table())
