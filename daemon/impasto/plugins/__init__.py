"""Impasto's plugin system: pluggy hooks, discovery, and the built-in plugins."""

from impasto.plugins.hookspecs import hookimpl
from impasto.plugins.types import (
    AppContext,
    PluginContext,
    PluginError,
    PluginFailed,
    PluginRejected,
    PluginReturnedWrong,
    PluginUnavailableError,
    PostprocessResult,
    RejectRequest,
    UnknownPluginError,
)

__all__ = [
    "AppContext",
    "PluginContext",
    "PluginError",
    "PluginFailed",
    "PluginRejected",
    "PluginReturnedWrong",
    "PluginUnavailableError",
    "PostprocessResult",
    "RejectRequest",
    "UnknownPluginError",
    "hookimpl",
]
