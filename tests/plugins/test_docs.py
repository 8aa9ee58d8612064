"""docs/plugins.md documents every hook and every setting of the built-in and example plugins."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from impasto.plugins import hookspecs
from impasto.plugins.manager import BUILTIN_PLUGINS, HOOKS

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
SPECS = sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "impasto_spec"))
PLUGIN_MODULES = [
    *BUILTIN_PLUGINS.values(),
    "impasto_upscale",
    "impasto_styles",
    "impasto_watermark",
]


def test_the_hook_list_matches_the_specs() -> None:
    assert sorted(HOOKS) == SPECS


@pytest.mark.parametrize("hook", SPECS)
def test_every_hook_has_a_section_with_its_arguments(hook: str) -> None:
    spec = getattr(hookspecs, hook)
    args = ", ".join(spec.__code__.co_varnames[: spec.__code__.co_argcount])
    assert f"### `{hook}({args})`" in DOCS, f"docs/plugins.md lacks a section for {hook}({args})"
    assert spec.__doc__ and "\n" not in spec.__doc__.strip(), "one docstring line per hook"


@pytest.mark.parametrize("module_name", PLUGIN_MODULES)
def test_every_plugin_setting_is_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    settings = getattr(module, "SETTINGS", {})
    title = module_name.split(".")[-1].removeprefix("impasto_")
    section = re.search(rf"\n### `{re.escape(title)}`.*?(?=\n### |\Z)", DOCS, re.S)
    assert section, f"docs/plugins.md lacks a section for {module_name}"
    for key in settings:
        assert f"| `{key}` |" in section.group(0), f"{module_name} setting {key} is undocumented"


@pytest.mark.parametrize("module_name", PLUGIN_MODULES)
def test_every_plugin_that_takes_options_shows_them(module_name: str) -> None:
    """A plugin declaring OPTIONS (the type of its request options) has an example of them."""
    module = importlib.import_module(module_name)
    if getattr(module, "OPTIONS", None) is None:
        return
    title = module_name.split(".")[-1].removeprefix("impasto_")
    section = re.search(rf"\n### `{re.escape(title)}`.*?(?=\n### |\Z)", DOCS, re.S)
    assert section, f"docs/plugins.md lacks a section for {module_name}"
    assert f'"plugins": {{"{title}": ' in section.group(0), f"{module_name} options unshown"
