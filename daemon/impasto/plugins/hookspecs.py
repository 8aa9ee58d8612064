"""The hooks an Impasto plugin may implement; each spec's docstring is its one-line contract."""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("impasto")
hookimpl = pluggy.HookimplMarker("impasto")

# Every hook may also take ``context`` (a PluginContext: the plugin's name, its [plugins.<name>]
# config table, the request's options for it, and the data and models folders).


@hookspec
def startup(app_context: Any, context: Any) -> None:
    """The daemon started (API process); ``app_context`` holds settings, paths and services."""


@hookspec
def shutdown(context: Any) -> None:
    """The daemon is stopping (API process); release what startup took."""


@hookspec
def preprocess_request(request: dict[str, Any], context: Any) -> dict[str, Any] | None:
    """Rewrite a generation request before it is queued (return it), or raise RejectRequest."""


@hookspec
def postprocess_result(result: Any, image: Any, context: Any) -> Any:
    """Return a replacement PIL image (or None) for one output; add PNG text to result.text."""


@hookspec
def register_samplers(context: Any) -> list[tuple[Any, ...]] | None:
    """Return (sampler id, class, display name[, register_sampler keywords]) to add samplers."""


@hookspec
def register_routes(context: Any) -> list[Any] | None:
    """Return Litestar route handlers or routers, mounted under /api/v1/plugins/<name>/."""


@hookspec
def model_loader(model_dir: str, context: Any) -> Any:
    """Return a pipeline (generate(params, progress, cancel), close()) for a folder, or None."""


@hookspec
def prompt_styles(context: Any) -> dict[str, dict[str, str]] | None:
    """Return named prompt styles, name -> {prompt, negative_prompt}, for style listings."""
