"""Where plugins come from: built-ins, `impasto.plugins` entry points and files in the data dir."""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from collections.abc import Callable, Mapping
from importlib import metadata
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pluggy

from impasto import __version__
from impasto.plugins import hookspecs
from impasto.plugins.calls import from_ctrl_c
from impasto.plugins.manager import (
    BUILTIN_PLUGINS,
    ENTRY_POINT_GROUP,
    HOOKS,
    STATE_FILE,
    PluginHost,
    PluginRecord,
    describe_error,
)

log = logging.getLogger("impasto.plugins")


def _unknown_hooks(module: ModuleType) -> list[str]:
    # pluggy keeps a marked function with no matching spec "pending"; a typo should be loud.
    marked = (n for n in dir(module) if hasattr(getattr(module, n), "impasto_impl"))
    return sorted(n for n in marked if n not in HOOKS)


def _options_type(module: ModuleType) -> Any:
    """The type the plugin's request options must have (its OPTIONS), None where it has none."""
    hint = getattr(module, "OPTIONS", None)
    if hint is not None:
        try:
            msgspec.inspect.type_info(hint)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"OPTIONS is not a type msgspec can check ({exc})") from None
    return hint


def _register(pm: pluggy.PluginManager, record: PluginRecord, load: Callable[[], Any]) -> None:
    try:
        module = load()
        unknown = _unknown_hooks(module)
        if unknown:
            raise TypeError(f"unknown hook(s) {', '.join(unknown)}; see docs/plugins.md")
        options_type = _options_type(module)
        pm.register(module, name=record.name)
    except BaseException as exc:  # SystemExit from an argparse at import time, too
        if from_ctrl_c(exc):
            raise
        record.error = describe_error(exc)
        log.warning(
            "plugin %s (%s) failed to load: %s",
            record.name,
            record.source,
            record.error,
            exc_info=exc,
        )
        return
    record.options_type = options_type
    record.module = module
    record.hooks = sorted(caller.name for caller in pm.get_hookcallers(module) or [])
    record.default_enabled = bool(getattr(module, "DEFAULT_ENABLED", True))
    record.version = str(getattr(module, "__version__", "") or record.version)


def _load_file(path: Path) -> ModuleType:
    spec = spec_from_file_location(f"impasto_plugin_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def discover(
    pm: pluggy.PluginManager, plugin_dir: Path | None, entry_points: bool = True
) -> list[PluginRecord]:
    """Register the built-ins, the ``impasto.plugins`` entry points and plugin_dir/*.py."""
    records: list[PluginRecord] = []
    taken: dict[str, str] = {}

    def add(record: PluginRecord, load: Callable[[], Any], short: str) -> None:
        # The first of a name wins (built-ins, then distributions, then files); a later one is
        # listed under "NAME (where it is)", with its error, and not loaded.
        if record.name in taken:
            record.error = f"the name {record.name!r} is already used by {taken[record.name]}"
            record.name = f"{record.name} ({short})"
        else:
            taken[record.name] = record.source
            _register(pm, record, load)
        records.append(record)

    for name, module_name in BUILTIN_PLUGINS.items():
        record = PluginRecord(name, __version__, f"builtin {module_name}", builtin=True)
        add(record, functools.partial(importlib.import_module, module_name), "builtin")
    if entry_points:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            version = dist.version if dist is not None else "0"
            dist_name = dist.name if dist else "?"
            source = f"distribution {dist_name} ({ep.value})"
            add(PluginRecord(ep.name, version, source), ep.load, f"distribution {dist_name}")
    if plugin_dir is not None and plugin_dir.is_dir():
        for path in sorted(plugin_dir.glob("*.py")):
            if not path.name.startswith("_"):
                add(
                    PluginRecord(path.stem, "0", f"file {path}"),
                    functools.partial(_load_file, path),
                    f"file {path.name}",
                )
    return records


def build_plugin_manager(
    *,
    data_dir: Path | None = None,
    models_dir: Path | None = None,
    config: Mapping[str, dict[str, Any]] | None = None,
    entry_points: bool = True,
    persist: bool = True,
) -> PluginHost:
    """Discover and register plugins now (never at import time) and return their host."""
    pm = pluggy.PluginManager("impasto")
    pm.add_hookspecs(hookspecs)
    plugin_dir = data_dir / "plugins" if data_dir is not None else None
    records = discover(pm, plugin_dir, entry_points)
    state_file = data_dir / STATE_FILE if data_dir is not None and persist else None
    return PluginHost(
        pm,
        records,
        config or {},
        data_dir=data_dir,
        models_dir=models_dir,
        state_file=state_file,
    )
