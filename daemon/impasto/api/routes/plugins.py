"""Plugins: list them, enable or disable them, and mount their own routes."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from litestar import Controller, Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath

from impasto.api.dependencies import Plugins, services_of
from impasto.plugins import PluginFailed, PluginUnavailableError, UnknownPluginError
from impasto.plugins.calls import from_ctrl_c
from impasto.plugins.manager import PluginHost
from impasto.services.errors import ConflictError, NotFoundError
from impasto.wire import PluginInfo

PLUGIN_ROUTES_PREFIX = "/api/v1/plugins"
log = logging.getLogger("impasto.plugins")


# Enabling and disabling write the state file on a thread of their own, not the shared one
# that requests' plugin hooks run in: a plugin hanging there can always be disabled.
_STATE_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plugins-state")


async def _set_in_thread(host: PluginHost, name: str, enabled: bool) -> PluginInfo:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_STATE_WRITER, _set, host, name, enabled)


def _set(host: PluginHost, name: str, enabled: bool) -> PluginInfo:
    try:
        return PluginInfo(**host.set_enabled(name, enabled))
    except UnknownPluginError as exc:
        raise NotFoundError(str(exc)) from None
    except PluginUnavailableError as exc:  # it failed to load: enabling it would do nothing
        raise ConflictError(str(exc)) from None


class PluginsController(Controller):
    path = "/plugins"
    tags = ["plugins"]

    @get("/", summary="Installed plugins: version, enabled, built-in, hooks, load error")
    async def list_plugins(self, plugin_host: Plugins) -> list[PluginInfo]:
        return [PluginInfo(**item) for item in plugin_host.statuses()]

    @post("/{name:str}/enable", status_code=200, summary="Enable a plugin from the next job on")
    async def enable(self, plugin_host: Plugins, name: FromPath[str]) -> PluginInfo:
        return await _set_in_thread(plugin_host, name, True)  # writes the state file

    @post("/{name:str}/disable", status_code=200, summary="Disable a plugin from the next job on")
    async def disable(self, plugin_host: Plugins, name: FromPath[str]) -> PluginInfo:
        return await _set_in_thread(plugin_host, name, False)  # writes the state file


def _enabled_guard(name: str) -> Any:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        host = services_of(connection.app.state).plugins
        if host is None or not host.active(name):
            why = host.not_running(name) if host is not None else "plugins are off"
            raise NotFoundException(why)

    return guard


def plugin_routers(host: PluginHost) -> list[Router]:
    """One router per plugin with register_routes, under /api/v1/plugins/<name>/."""
    return [
        Router(
            path=f"{PLUGIN_ROUTES_PREFIX}/{name}",
            route_handlers=handlers,
            guards=[_enabled_guard(name)],
            middleware=[_pinned_on(name)],
            exception_handlers={PluginFailed: _plugin_failed},
            tags=[f"plugin {name}"],
        )
        for name, handlers in host.route_handlers(is_route_handler).items()
    ]


def _plugin_failed(request: Request[Any, Any, Any], exc: PluginFailed) -> Response[Any]:
    """A plugin's route failed: a 500 naming the plugin (logged where it was raised)."""
    return Response({"status_code": 500, "detail": exc.message}, status_code=500)


def _pinned_on(name: str) -> Any:
    """Middleware of a plugin's routes: a SystemExit or KeyboardInterrupt its handler raises
    (which Litestar's error handling, for Exceptions, lets through as a bare 500 and no log)
    is the plugin's error, logged with its traceback. A cancelled request's CancelledError
    stays the server's."""

    def middleware(app: Any) -> Any:
        async def pinned(scope: Any, receive: Any, send: Any) -> None:
            try:
                await app(scope, receive, send)
            except (SystemExit, KeyboardInterrupt) as exc:
                if from_ctrl_c(exc):
                    raise
                route = f"its route {scope.get('path', '')}"
                log.error("plugin %s failed in %s", name, route, exc_info=exc)
                raise PluginFailed(name, route, exc) from exc

        return pinned

    return middleware


def is_route_handler(value: Any) -> bool:
    """What Litestar mounts: a route handler, a router, or a controller class."""
    if isinstance(value, type):
        return issubclass(value, Controller)
    return isinstance(value, BaseRouteHandler | Router)
