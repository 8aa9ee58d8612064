"""Impasto plugin: expand named prompt styles from a TOML file before a job is queued."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from litestar import get

from impasto.plugins import PluginContext, RejectRequest, hookimpl

__version__ = "0.1.0"
log = logging.getLogger(__name__)

SETTINGS = {
    "file": "The styles TOML file, absolute or relative to the data dir (default styles.toml).",
    "default": "Styles applied when a request names none (default []).",
}

# The request field a refusal names: this plugin's options (A1111 clients send them as
# ``styles``, and their errors say so).
FIELD = "plugins.styles"
# What the request's options may be (the plugin host refuses anything else with a 422): the
# names of styles to apply, or one name.
OPTIONS = list[str] | str | None

_cache: dict[Path, tuple[float, dict[str, dict[str, str]]]] = {}
_context: dict[str, PluginContext] = {}


def styles_file(context: PluginContext) -> Path:
    """Where the styles of this daemon are kept."""
    path = Path(str(context.config.get("file", "styles.toml")))
    if not path.is_absolute() and context.data_dir is not None:
        path = context.data_dir / path
    return path


def shown_file(context: PluginContext) -> str:
    """The styles file as an answer names it: under ``<data>``, never by its local path."""
    configured = str(context.config.get("file", "styles.toml"))
    if Path(configured).is_absolute():
        return "the file the plugin's config names"
    return f"<data>/{configured}"


SHOWN_NAMES = 5  # unknown style names an error repeats (a request may send thousands)


class StylesFileError(ValueError):
    """The styles file cannot be read and no earlier reading of it is at hand."""


def load_styles(path: Path) -> dict[str, dict[str, str]]:
    """Style name -> {prompt, negative_prompt}; re-read when the file changes.

    An edit that breaks the file keeps the styles as last read, with a warning; with none
    read before, StylesFileError says what is wrong (its caller names the file).
    """
    if not path.is_file():
        return {}
    mtime = path.stat().st_mtime
    cached = _cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        problem = f"not readable as TOML: {exc}"
        if cached is None:
            raise StylesFileError(problem) from None
        log.warning("styles file %s: %s; the styles as last read are kept", path, problem)
        _cache[path] = (mtime, cached[1])  # warn once per edit
        return cached[1]
    styles = {
        str(name): {
            "prompt": str(table.get("prompt", "")),
            "negative_prompt": str(table.get("negative_prompt", "")),
        }
        for name, table in raw.items()
        if isinstance(table, dict)
    }
    _cache[path] = (mtime, styles)
    return styles


def _listed(context: PluginContext | None) -> dict[str, dict[str, str]]:
    """The styles for a listing: none (with a warning) while the file cannot be read."""
    if context is None:
        return {}
    path = styles_file(context)
    try:
        return load_styles(path)
    except StylesFileError as exc:
        log.warning("styles file %s: %s", path, exc)
        return {}


def _join(first: str, second: str) -> str:
    return ", ".join(part for part in (first.strip(), second.strip()) if part)


def apply_style(prompt: str, negative: str, style: dict[str, str]) -> tuple[str, str]:
    """The prompt and negative prompt after one style."""
    template = style["prompt"]
    prompt = (
        template.replace("{prompt}", prompt) if "{prompt}" in template else _join(prompt, template)
    )
    return prompt, _join(negative, style["negative_prompt"])


@hookimpl
def startup(app_context: Any, context: PluginContext) -> None:
    """Remember the context so the listing route finds the styles file."""
    _context["styles"] = context


@hookimpl(tryfirst=True)
def preprocess_request(request: dict[str, Any], context: PluginContext) -> dict[str, Any] | None:
    """Expand the styles a request names (or the configured default ones)."""
    names = context.options if context.options is not None else context.config.get("default", [])
    if isinstance(names, str):
        names = [names]
    if not names:
        return None
    try:
        styles = load_styles(styles_file(context))
    except StylesFileError as exc:
        raise RejectRequest(f"styles file {shown_file(context)}: {exc}", FIELD) from None
    unknown = [n for n in names if n not in styles]
    if unknown:
        known = ", ".join(sorted(styles)) or f"none (add some to {shown_file(context)})"
        more = f" and {len(unknown) - SHOWN_NAMES} more" if len(unknown) > SHOWN_NAMES else ""
        listed = ", ".join(map(str, unknown[:SHOWN_NAMES])) + more
        raise RejectRequest(f"unknown style(s) {listed}; known: {known}", FIELD)
    prompt, negative = request["prompt"], request.get("negative_prompt") or ""
    for name in names:
        prompt, negative = apply_style(prompt, negative, styles[name])
    return {**request, "prompt": prompt, "negative_prompt": negative}


@hookimpl
def prompt_styles(context: PluginContext) -> dict[str, dict[str, str]]:
    """The styles of the styles file, for listings such as A1111's /sdapi/v1/prompt-styles."""
    return _listed(context)


@get("/", summary="The named prompt styles", sync_to_thread=True)
def list_styles() -> dict[str, dict[str, str]]:
    """Every style in the styles file (read in a thread: a file on a slow disk)."""
    return _listed(_context.get("styles"))


@hookimpl
def register_routes(context: PluginContext) -> list[Any]:
    """GET /api/v1/plugins/styles/ lists the styles."""
    return [list_styles]
