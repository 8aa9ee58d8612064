"""The token cannot be bypassed by spelling a path differently (issue #20, item 1).

Every route of the OpenAPI schema is requested without a token under each spelling that a
router might normalise; a protected route must answer 401, or the request must miss every
route (the public UI's 404/405), never reach the handler.
"""

from __future__ import annotations

import re

import pytest
import websockets.exceptions
import websockets.sync.client as ws_client

from tests.hardening.conftest import TOKEN
from tests.hardening.rawhttp import RawResponse, request
from tests.harness import Daemon

PUBLIC_ROUTES = {("GET", "/api/v1/health")}
# Spellings the router dispatches to the same handler: these must be refused with 401.
DISPATCHED = {
    "as is": lambda p: p,
    "leading //": lambda p: "/" + p,
    "inner //": lambda p: p.replace("/", "//", 2),
    "%2f": lambda p: "/" + p[1:].replace("/", "%2f"),
    "%2F": lambda p: "/" + p[1:].replace("/", "%2F"),
    "trailing /": lambda p: p + "/",
    "trailing //": lambda p: p + "//",
}
# Spellings that may instead miss every route; they must still never reach the handler.
OTHERS = {
    "/./": lambda p: "/." + p,
    "/x/../": lambda p: "/x/.." + p,
    "upper case": lambda p: p.upper(),
    "%2e%2e": lambda p: "/x/%2e%2e" + p,
}
BODY_METHODS = {"POST", "PUT", "PATCH"}


def _routes(daemon: Daemon) -> list[tuple[str, str]]:
    schema = request(daemon.port, "GET", "/schema/openapi.json").json()
    routes = []
    for template, operations in schema["paths"].items():
        path = re.sub(r"\{[^}]+\}", "1", template)  # "1" fits str and int parameters
        for method in operations:
            if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                routes.append((method.upper(), path))
    return routes


def _send(daemon: Daemon, method: str, target: str, **headers: str) -> RawResponse:
    body = b"{}" if method in BODY_METHODS else b""
    return request(
        daemon.port,
        method,
        target,
        headers={"Content-Type": "application/json", **headers},
        body=body,
    )


def _missed_every_route(response: RawResponse) -> bool:
    """The public UI router's answer to a path that names no file, or to a non-GET method."""
    if response.status == 404:
        return "no file or directory match" in response.json()["detail"]
    return response.status == 405


def test_schema_lists_the_api(guarded_daemon: Daemon) -> None:
    routes = _routes(guarded_daemon)
    prefixes = {path.split("/")[1] for _, path in routes}
    assert {"api", "sdapi", "v1"} <= prefixes and len(routes) > 40


def test_every_protected_route_needs_the_token_in_every_spelling(guarded_daemon: Daemon) -> None:
    failures = []
    for method, path in _routes(guarded_daemon):
        if (method, path) in PUBLIC_ROUTES:
            continue
        for name, spell in DISPATCHED.items():
            response = _send(guarded_daemon, method, spell(path))
            if response.status != 401:
                failures.append(f"{method} {spell(path)} ({name}): {response.status}")
        for name, spell in OTHERS.items():
            response = _send(guarded_daemon, method, spell(path))
            if response.status != 401 and not _missed_every_route(response):
                failures.append(f"{method} {spell(path)} ({name}): {response.status}")
    assert not failures, "\n".join(failures)


def test_a_wrong_or_blank_token_is_refused_and_the_right_one_passes(guarded_daemon: Daemon) -> None:
    for spell in DISPATCHED.values():
        target = spell("/api/v1/queue")
        assert _send(guarded_daemon, "GET", target, Authorization="Bearer nope").status == 401
        assert _send(guarded_daemon, "GET", target, Authorization="Bearer ").status == 401
        assert _send(guarded_daemon, "GET", target, Authorization=f"Bearer {TOKEN}").status == 200


def test_public_routes_stay_public(guarded_daemon: Daemon) -> None:
    for spell in DISPATCHED.values():
        assert _send(guarded_daemon, "GET", spell("/api/v1/health")).status == 200
    ui_and_docs = [
        "/",
        "/index.html",
        "/js/app.js",
        "/css/app.css",
        "/schema",
        "/schema/openapi.json",
    ]
    for path in ui_and_docs:
        assert _send(guarded_daemon, "GET", path).status == 200, path
    assert _send(guarded_daemon, "HEAD", "/").status == 200  # the index answers HEAD too


@pytest.mark.parametrize("spell", [*DISPATCHED.values(), *OTHERS.values()])
def test_websocket_needs_the_token_in_every_spelling(guarded_daemon: Daemon, spell) -> None:
    url = f"ws://127.0.0.1:{guarded_daemon.port}{spell('/api/v1/ws')}"
    with (
        pytest.raises(
            (websockets.exceptions.InvalidStatus, websockets.exceptions.ConnectionClosed)
        ) as refused,
        ws_client.connect(url, open_timeout=10) as conn,
    ):
        conn.recv(timeout=10)
    if isinstance(refused.value, websockets.exceptions.ConnectionClosed):
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 4401


def test_websocket_with_the_token_opens(guarded_daemon: Daemon) -> None:
    url = f"ws://127.0.0.1:{guarded_daemon.port}//api/v1/ws?token={TOKEN}"
    with ws_client.connect(url, open_timeout=10) as conn:
        assert conn.protocol.state.name == "OPEN"
