"""Whether a model can run on this machine's execution provider, in words a user can act on."""

from __future__ import annotations

from impasto.engine.runs_on import Capability, short_name
from impasto.services.convert import converter_hint

# Files of a hub listing that hold weights only (ONNX external data); the graphs come first.
WEIGHT_SUFFIXES = (".onnx_data", ".data", ".pb", ".bin")


class UnrunnableError(Exception):
    """The model's graphs need operators this machine's provider lacks; nothing big was fetched."""


def refusal(capability: Capability | None, provider: str, what: str) -> str:
    """Why ``what`` cannot run on ``provider`` and what would, or '' when it can (or unknown)."""
    if capability is None or not provider or capability.runs(provider):
        return ""
    where = capability.summary()
    return (
        f"{what} cannot run on this machine's execution provider ({short_name(provider)}): "
        f"{capability.why_not(provider)}. It runs on: {where}. Install a portable build "
        "(plain ONNX) instead: `impasto pull --list` shows catalog models and the build this "
        f"machine gets; a diffusers repo is converted here (the converter: {converter_hint()}). "
        "To install this one anyway (to copy to another machine), repeat with --force."
    )


def is_weight_file(path: str) -> bool:
    """Whether a listed file holds only weights (external data), not a graph or a config."""
    return path.endswith(WEIGHT_SUFFIXES)
