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


def docs_block(language: str, first_line: str) -> str:
    """The fenced ``language`` block of docs/plugins.md whose first line is ``first_line``."""
    for block in re.findall(rf"```{language}\n(.*?)```", DOCS, re.S):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"docs/plugins.md has no {language} block starting {first_line!r}")


def test_the_example_plugin_runs_as_written(tmp_path: Path) -> None:
    """docs/plugins.md's shout.py, dropped into <data_dir>/plugins/ as the docs say."""
    from impasto.plugins import PluginRejected
    from impasto.plugins.discovery import build_plugin_manager

    source = docs_block("python", "# <data_dir>/plugins/shout.py")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "shout.py").write_text(source)
    host = build_plugin_manager(
        data_dir=tmp_path, config={"shout": {"suffix": "!!"}}, entry_points=False
    )
    listed = {item["name"]: item for item in host.statuses()}["shout"]
    assert (listed["version"], listed["enabled"], listed["error"]) == ("1.0", True, None)
    assert listed["hooks"] == ["preprocess_request"]
    with pytest.raises(PluginRejected) as refused:
        host.preprocess_request({"prompt": "a cat"})
    assert (refused.value.field, refused.value.message) == (
        "prompt",
        "rejected by plugin 'shout': ask nicely",
    )
    assert host.preprocess_request({"prompt": "a cat please"})["prompt"] == "a cat please!!"
    asked = host.preprocess_request({"prompt": "a cat please", "plugins": {"shout": "?"}})
    assert asked["prompt"] == "a cat please?"
    with pytest.raises(PluginRejected) as typed:
        host.preprocess_request({"prompt": "a cat please", "plugins": {"shout": 5}})
    assert typed.value.field == "plugins.shout"
    assert typed.value.message.startswith("plugin 'shout' takes str | None here: ")


def test_the_prompt_filter_example_config_filters_as_described(tmp_path: Path) -> None:
    import tomllib

    from impasto.plugins import PluginRejected
    from impasto.plugins.discovery import build_plugin_manager

    config = tomllib.loads(docs_block("toml", "[plugins.prompt_filter]"))["plugins"]
    host = build_plugin_manager(data_dir=tmp_path, config=config, entry_points=False)
    for prompt in ("a GORE scene", "a bloodied knight"):
        with pytest.raises(PluginRejected, match="prompt_filter"):
            host.preprocess_request({"prompt": prompt})
    assert host.preprocess_request({"prompt": "a bloodhound"})["prompt"] == "a bloodhound"


def test_the_styles_example_file_styles_as_described(tmp_path: Path) -> None:
    """docs/plugins.md's styles.toml with the installed impasto-styles: {prompt} templates,
    and a style without one appended after the prompt with ", "."""
    from impasto.plugins.discovery import build_plugin_manager

    (tmp_path / "styles.toml").write_text(docs_block("toml", "[cinematic]"))
    host = build_plugin_manager(data_dir=tmp_path)
    request = {"prompt": "a cat", "negative_prompt": "", "plugins": {}}
    styled = host.preprocess_request({**request, "plugins": {"styles": ["cinematic"]}})
    assert styled["prompt"] == "cinematic still of a cat, shallow depth of field, film grain"
    assert styled["negative_prompt"] == "cartoon, drawing"
    styled = host.preprocess_request({**request, "plugins": {"styles": "watercolor"}})
    assert styled["prompt"] == "a cat, watercolor painting"
