"""Plugins: list them, enable or disable them, and mount their own routes."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Router, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath

from impasto.plugins import UnknownPluginError
from impasto.services.errors import NotFoundError
from impasto.wire import Schema

PLUGIN_ROUTES_PREFIX = "/api/v1/plugins"


class PluginInfo(Schema):
    """One discovered plugin and its state."""

    name: str
    version: str
    enabled: bool
    builtin: bool
    hooks: list[str]
    source: str
    error: str | None


def _host(state: State) -> Any:
    host = state.services.plugins
    if host is None:
        raise NotFoundError("plugins are not loaded in this daemon")
    return host


def _set(state: State, name: str, enabled: bool) -> PluginInfo:
    try:
        return PluginInfo(**_host(state).set_enabled(name, enabled))
    except UnknownPluginError as exc:
        raise NotFoundError(str(exc)) from None


class PluginsController(Controller):
    path = "/plugins"
    tags = ["plugins"]

    @get("/", summary="Installed plugins: version, enabled, built-in, hooks, load error")
    async def list_plugins(self, state: State) -> list[PluginInfo]:
        return [PluginInfo(**item) for item in _host(state).statuses()]

    @post("/{name:str}/enable", status_code=200, summary="Enable a plugin from the next job on")
    async def enable(self, state: State, name: FromPath[str]) -> PluginInfo:
        return _set(state, name, True)

    @post("/{name:str}/disable", status_code=200, summary="Disable a plugin from the next job on")
    async def disable(self, state: State, name: FromPath[str]) -> PluginInfo:
        return _set(state, name, False)


def _enabled_guard(name: str) -> Any:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not connection.app.state.services.plugins.active(name):
            raise NotFoundException(f"plugin {name!r} is disabled; `impasto plugins enable {name}`")

    return guard


def plugin_routers(host: Any) -> list[Router]:
    """One router per plugin with register_routes, under /api/v1/plugins/<name>/."""
    return [
        Router(
            path=f"{PLUGIN_ROUTES_PREFIX}/{name}",
            route_handlers=handlers,
            guards=[_enabled_guard(name)],
            tags=[f"plugin {name}"],
        )
        for name, handlers in host.route_handlers().items()
    ]
