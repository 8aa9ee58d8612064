"""The plugin calls of the client: list plugins, enable or disable one."""

from __future__ import annotations

import httpx
import msgspec

from impasto import wire
from impasto.client.core import Call, api_path
from impasto.client.errors import ImpastoError

PluginInfo = wire.PluginInfo


def _decode(kind: type) -> object:
    def parse(response: httpx.Response) -> object:
        try:
            return msgspec.json.decode(response.content, type=kind)
        except msgspec.MsgspecError as exc:
            raise ImpastoError(f"unexpected answer from the daemon: {exc}") from None

    return parse


def list_plugins() -> Call[list[PluginInfo]]:
    """GET /plugins."""
    return Call("GET", "/plugins", _decode(list[PluginInfo]))  # type: ignore[arg-type]


def set_plugin_enabled(name: str, enabled: bool) -> Call[PluginInfo]:
    """POST /plugins/{name}/enable or /disable."""
    action = "enable" if enabled else "disable"
    return Call("POST", api_path("plugins", name, action), _decode(PluginInfo))  # type: ignore[arg-type]
