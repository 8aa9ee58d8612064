"""Reading the settings from their four sources: defaults < config.toml < IMPASTO_*
environment < CLI flags, each value checked and named by its source when it is wrong."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import platformdirs

from impasto.settings import APP_NAME, ENV_PREFIX, Settings, field_ranges


@dataclass(frozen=True)
class LoadedSettings:
    """The effective settings and, per field, where its value came from."""

    settings: Settings
    sources: dict[str, str]
    config_path: Path
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The config file's ``[plugins.<name>]`` tables, by plugin name (checked as tables)."""


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config.toml in the platform's config dir (IMPASTO_CONFIG overrides it)."""
    override = (os.environ if env is None else env).get(f"{ENV_PREFIX}CONFIG")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


# Settings that name a file or folder: ``~`` is expanded and a relative path made absolute at
# load time (from the working directory for env and flags, from the config file's folder).
PATH_FIELDS = frozenset(
    {
        "socket_path",
        "data_dir",
        "runtime_dir",
        "log_dir",
        "output_dir",
        "models_dir",
        "temp_dir",
        "install_roots",
        "model_catalog",
    }
)
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_RANGE_ERROR = re.compile(r"^Expected `(?:int|float)` [<>]=")
_TYPE_ERROR = re.compile(r"Expected `(\w+)(?: \| null)?`, got `\w+`$")
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
}


def _field_types() -> dict[str, type]:
    return {f.name: f.type for f in msgspec.structs.fields(Settings)}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    defaults = Settings()
    for name in _field_types():
        var = ENV_PREFIX + name.upper()
        raw = env.get(var)
        if raw is None:
            continue
        default = getattr(defaults, name)
        if isinstance(default, list):
            values[name] = [part.strip() for part in raw.split(",") if part.strip()]
        elif isinstance(default, bool):
            word = raw.strip().lower()
            if word not in TRUE_WORDS | FALSE_WORDS:
                raise ValueError(
                    f"setting {name!r} from environment ({var}): {raw!r} is not a boolean; "
                    "use 1/true/yes/on or 0/false/no/off"
                )
            values[name] = word in TRUE_WORDS
        elif isinstance(default, int | float):
            values[name] = raw.strip()
        else:
            values[name] = raw
    return values


def _absolute(value: str, base: Path) -> str:
    """``value`` with ``~`` expanded, made absolute against ``base``; empty stays empty."""
    if not value:
        return value
    return os.path.abspath(base / Path(value).expanduser())


def _with_absolute_paths(values: dict[str, Any], base: Path) -> dict[str, Any]:
    """The path settings of one layer made absolute (after their types were checked)."""
    fixed = dict(values)
    for key in PATH_FIELDS & set(values):
        value = values[key]
        if isinstance(value, list):
            fixed[key] = [_absolute(str(item), base) for item in value]
        else:
            fixed[key] = _absolute(str(value), base)
    return fixed


def _check_plugins(data: Mapping[str, Any], path: Path) -> None:
    """``plugins`` must be a table of tables: each plugin's own settings."""
    if "plugins" not in data:
        return
    table = data["plugins"]
    if not isinstance(table, dict):
        raise ValueError(
            f"setting 'plugins' from config file {path}: must be a table "
            f"([plugins.<name>] sections), not {table!r}"
        )
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise ValueError(
                f"setting 'plugins.{name}' from config file {path}: must be a table "
                f"([plugins.{name}] section), not {entry!r}"
            )


def _check_config_path(path: Path, origin: str | None) -> bool:
    """Whether to read ``path``; ValueError when a file that was named is not there."""
    if path.is_file():
        return True
    if path.is_dir():
        raise ValueError(f"config file {path} (from {origin or 'default'}) is a directory")
    if origin is not None:
        raise ValueError(f"config file {path} (from {origin}) does not exist")
    return False


def _named(source: str, key: str) -> str:
    """``source`` with the variable's name where it is the environment."""
    return f"environment ({ENV_PREFIX}{key.upper()})" if source == "environment" else source


def _invalid(key: str, value: Any, source: str, exc: msgspec.ValidationError) -> ValueError:
    """The error of one bad value, naming the variable of one from the environment, with the
    documented "Allowed" range when it is out of it or of another type."""
    message = str(exc).split(" - at ", 1)[0]
    source = _named(source, key)
    allowed = field_ranges().get(key)
    if allowed and _RANGE_ERROR.match(message):
        return ValueError(
            f"setting {key!r} from {source}: {value!r} is out of range. Allowed: {allowed}."
        )
    kind = _TYPE_ERROR.match(message)
    if kind and kind.group(1) in _TYPE_WORDS:
        more = f" Allowed: {allowed}." if allowed else ""
        return ValueError(
            f"setting {key!r} from {source}: {value!r} is not {_TYPE_WORDS[kind.group(1)]}.{more}"
        )
    return ValueError(f"setting {key!r} from {source}: {message}")


def load_settings(
    cli: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
    config_origin: str | None = None,
) -> LoadedSettings:
    """Merge the four sources; a bad value raises ValueError naming the key and its source.

    ``config_origin`` names where an explicit ``config_path`` came from (``"--config"``):
    such a file must exist. Only the default location may be absent.
    """
    env = os.environ if env is None else env
    if config_path is not None:
        path, origin = config_path.expanduser(), config_origin
    else:
        path = default_config_path(env)
        origin = f"{ENV_PREFIX}CONFIG" if env.get(f"{ENV_PREFIX}CONFIG") else None
        # A missing IMPASTO_CONFIG file still means "no config file": the test harness and
        # fixtures point it at an empty folder to isolate from the user's config.
        origin = None if origin and not path.exists() else origin
    cwd = Path.cwd()
    layers: list[tuple[str, dict[str, Any], Path]] = []
    plugins: dict[str, dict[str, Any]] = {}
    if _check_config_path(path, origin):
        data = _read_config(path)
        known = {k: v for k, v in data.items() if k in _field_types()}
        unknown = sorted(set(data) - set(known) - {"plugins"})
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        _check_plugins(data, path)
        plugins = {name: dict(table) for name, table in data.get("plugins", {}).items()}
        layers.append((f"config file {path}", known, path.absolute().parent))
    layers.append(("environment", _from_env(env), cwd))
    cli_values = {k: v for k, v in (cli or {}).items() if v is not None}
    layers.append(("command line", cli_values, cwd))

    merged: dict[str, Any] = {}
    sources = dict.fromkeys(_field_types(), "default")
    for source, values, base in layers:
        for key, value in values.items():
            try:
                msgspec.convert({key: value}, Settings, strict=False)
            except msgspec.ValidationError as exc:
                raise _invalid(key, value, source, exc) from None
            sources[key] = source
        merged.update(_with_absolute_paths(values, base))
    settings = msgspec.convert(merged, Settings, strict=False)
    catalog = Path(settings.model_catalog)
    if settings.model_catalog and not catalog.is_file():
        what = "is a directory" if catalog.is_dir() else "does not exist"
        raise ValueError(
            f"setting 'model_catalog' from {_named(sources['model_catalog'], 'model_catalog')}: "
            f"{catalog} {what} "
            "(leave it empty for the built-in catalog)"
        )
    return LoadedSettings(settings=settings, sources=sources, config_path=path, plugins=plugins)


def _read_config(path: Path) -> dict[str, Any]:
    """The config file's table; ValueError naming the file (and line) when it cannot be read."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path}: not valid TOML: line {line} is not UTF-8 text (byte {raw[exc.start]:#04x})"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
