"""The plugin host without a daemon: state persistence, order, and name clashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from impasto.plugins import UnknownPluginError
from impasto.plugins.discovery import build_plugin_manager

PLUGIN = """
from impasto.plugins import hookimpl

@hookimpl
def preprocess_request(request, context):
    return {**request, "prompt": request["prompt"] + " {tag}" + context.config.get("x", "")}
"""


def write_plugin(data_dir: Path, name: str, tag: str) -> None:
    folder = data_dir / "plugins"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(PLUGIN.replace("{tag}", tag))


def test_enabled_flags_persist_across_managers(tmp_path: Path) -> None:
    write_plugin(tmp_path, "tagger", "t")
    first = build_plugin_manager(data_dir=tmp_path, entry_points=False)
    assert first.enabled("tagger") and not first.enabled("prompt_filter")
    first.set_enabled("tagger", False)
    first.set_enabled("prompt_filter", True)
    second = build_plugin_manager(data_dir=tmp_path, entry_points=False)
    assert not second.enabled("tagger") and second.enabled("prompt_filter")
    assert second.preprocess_request({"prompt": "p"})["prompt"] == "p"
    with pytest.raises(UnknownPluginError, match="tagger"):
        second.set_enabled("missing", True)


def test_config_reaches_hooks_and_can_set_the_default(tmp_path: Path) -> None:
    write_plugin(tmp_path, "a_tagger", "a")
    write_plugin(tmp_path, "b_tagger", "b")
    config = {"a_tagger": {"x": "!"}, "b_tagger": {"enabled": False}}
    host = build_plugin_manager(data_dir=tmp_path, config=config, entry_points=False)
    assert host.preprocess_request({"prompt": "p"})["prompt"] == "p a!"
    host.set_enabled("b_tagger", True)
    # pluggy's order: the last registered plugin runs first.
    assert host.preprocess_request({"prompt": "p"})["prompt"] == "p b a!"
