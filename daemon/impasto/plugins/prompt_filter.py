"""Built-in, off by default: reject prompts holding words or patterns listed in config.toml."""

from __future__ import annotations

import re
from typing import Any

from impasto.plugins.hookspecs import hookimpl
from impasto.plugins.types import PluginContext, RejectRequest

DEFAULT_ENABLED = False

SETTINGS = {
    "words": "Words (case-insensitive, whole words) a prompt may not contain.",
    "patterns": "Regular expressions (Python syntax, case-insensitive) a prompt may not match.",
    "check_negative": "Also check the negative prompt (default false).",
}


def _compiled(config: dict[str, Any]) -> list[tuple[str, re.Pattern[str]]]:
    rules = [
        (f"the blocked word {word!r}", re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE))
        for word in config.get("words", [])
    ]
    for pattern in config.get("patterns", []):
        try:
            rules.append((f"the blocked pattern {pattern!r}", re.compile(pattern, re.IGNORECASE)))
        except re.error as exc:
            raise ValueError(f"[plugins.prompt_filter] pattern {pattern!r}: {exc}") from None
    return rules


@hookimpl(trylast=True)
def preprocess_request(request: dict[str, Any], context: PluginContext) -> None:
    """Refuse the request when its final prompt (after other plugins) hits a rule."""
    fields = ["prompt"] + (["negative_prompt"] if context.config.get("check_negative") else [])
    for field in fields:
        text = str(request.get(field) or "")
        for label, rule in _compiled(context.config):
            if rule.search(text):
                raise RejectRequest(
                    f"the {field.replace('_', ' ')} contains {label}; rephrase it "
                    "(the list is [plugins.prompt_filter] in config.toml)",
                    field=field,
                )
