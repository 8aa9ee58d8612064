"""Files shipped with Impasto (the static web UI, the bundled models), and whether this
process is the single binary that ships them."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def _shipped(name: str, repo_relative: str) -> Path:
    # A wheel or a binary carries it inside the package; a source checkout has it at the top.
    inside = Path(str(resources.files("impasto"))) / name
    return inside if inside.is_dir() else _REPO / repo_relative


def ui_static_dir() -> Path:
    """The folder of the bundled web UI."""
    return _shipped("ui_static", "ui_static")


def bundled_models_dir() -> Path:
    """The folder holding the tiny demo models that ship with Impasto."""
    return _shipped("bundled_models", "models/tiny")


def source_checkout() -> bool:
    """True when Impasto runs from its repository (``make run``, ``pip install -e .``)."""
    return not compiled() and (_REPO / "pyproject.toml").is_file() and (_REPO / "daemon").is_dir()


def compiled() -> bool:
    """True inside the single binary (Nuitka sets ``__compiled__`` in every compiled module)."""
    return "__compiled__" in globals() or bool(getattr(sys, "frozen", False))
