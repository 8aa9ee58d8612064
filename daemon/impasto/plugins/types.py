"""What hooks receive and raise: the plugin context, an output being post-processed, errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PluginContext:
    """Handed to every hook: who the plugin is, its config, and where Impasto keeps things."""

    name: str
    config: dict[str, Any]
    options: Any = None
    data_dir: Path | None = None
    models_dir: Path | None = None


@dataclass
class PostprocessResult:
    """One generated image about to be written; ``text`` becomes the PNG's text chunks."""

    job_id: str
    index: int
    seed: int
    model: str
    request: dict[str, Any]
    text: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AppContext:
    """What ``startup`` receives in the API process."""

    settings: Any
    paths: Any
    services: Any


class RejectRequest(Exception):
    """Raised by preprocess_request to refuse a request; the client gets a 422 with ``message``."""

    def __init__(self, message: str, field: str = "prompt") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class PluginError(Exception):
    """A plugin refused or broke something; ``plugin`` names it for the user."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.message = message


class PluginRejected(PluginError):
    """The request was refused on behalf of ``plugin``; ``field`` names the input at fault.
    ``fault``: the plugin broke it (returned what the schema refuses), it did not refuse it."""

    def __init__(self, plugin: str, message: str, field: str, *, fault: bool = False) -> None:
        super().__init__(plugin, message)
        self.field = field
        self.fault = fault


class PluginFailed(PluginError):
    """A hook raised something unexpected (any BaseException: SystemExit too), or returned what
    its hook does not take; only the job it touched fails."""

    def __init__(self, plugin: str, hook: str, exc: BaseException) -> None:
        raised = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        super().__init__(
            plugin,
            f"plugin {plugin!r} failed in {hook}: {raised}; "
            f"disable it with `impasto plugins disable {plugin}`",
        )


class PluginReturnedWrong(PluginFailed):
    """A hook returned a value of a type its hook does not take."""

    def __init__(self, plugin: str, hook: str, value: Any, expected: str) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        super().__init__(
            plugin,
            hook,
            TypeError(f"returned {type(value).__name__} {shown}, expected {expected}"),
        )


class PluginUnavailableError(Exception):
    """The plugin exists but failed to load or to start, so it cannot be enabled."""


class UnknownPluginError(LookupError):
    """No plugin of that name was found."""
