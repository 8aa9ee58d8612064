"""Plugins: list them, enable or disable them, and mount their own routes."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Router, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath

from impasto.api.dependencies import Plugins, services_of
from impasto.plugins import UnknownPluginError
from impasto.plugins.manager import PluginHost
from impasto.services.errors import NotFoundError
from impasto.wire import PluginInfo

PLUGIN_ROUTES_PREFIX = "/api/v1/plugins"


def _set(host: PluginHost, name: str, enabled: bool) -> PluginInfo:
    try:
        return PluginInfo(**host.set_enabled(name, enabled))
    except UnknownPluginError as exc:
        raise NotFoundError(str(exc)) from None


class PluginsController(Controller):
    path = "/plugins"
    tags = ["plugins"]

    @get("/", summary="Installed plugins: version, enabled, built-in, hooks, load error")
    async def list_plugins(self, plugin_host: Plugins) -> list[PluginInfo]:
        return [PluginInfo(**item) for item in plugin_host.statuses()]

    @post("/{name:str}/enable", status_code=200, summary="Enable a plugin from the next job on")
    async def enable(self, plugin_host: Plugins, name: FromPath[str]) -> PluginInfo:
        return await asyncio.to_thread(_set, plugin_host, name, True)  # writes the state file

    @post("/{name:str}/disable", status_code=200, summary="Disable a plugin from the next job on")
    async def disable(self, plugin_host: Plugins, name: FromPath[str]) -> PluginInfo:
        return await asyncio.to_thread(_set, plugin_host, name, False)  # writes the state file


def _enabled_guard(name: str) -> Any:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        host = services_of(connection.app.state).plugins
        if host is None or not host.active(name):
            raise NotFoundException(f"plugin {name!r} is disabled; `impasto plugins enable {name}`")

    return guard


def plugin_routers(host: PluginHost) -> list[Router]:
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
