"""Fixtures of the CLI tests: no config file and no daemon unless a test provides one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point config and runtime dir at empty temp folders; drop IMPASTO_* from the outside."""
    for name in list(os.environ):
        if name.startswith("IMPASTO_"):
            monkeypatch.delenv(name)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("IMPASTO_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("IMPASTO_RUNTIME_DIR", str(runtime))
    return runtime
