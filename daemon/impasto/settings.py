"""One typed settings object: defaults < config.toml < IMPASTO_* environment < CLI flags."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
import platformdirs

from impasto.wire.requests import KEEP_ALIVE_MAX

APP_NAME = "impasto"
ENV_PREFIX = "IMPASTO_"


def _doc(text: str, *, ge: int | None = None, le: int | None = None) -> msgspec.Meta:
    """The field's one-line doc and its bounds, checked on every load."""
    return msgspec.Meta(description=text, ge=ge, le=le)


LOG_LEVELS = ("debug", "info", "warning", "error")


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Every knob of the daemon; each field has a default, an env variable and a config key."""

    host: Annotated[
        str, _doc("Address the HTTP server binds to (loopback unless a token is set).")
    ] = "localhost"
    port: Annotated[
        int, _doc("TCP port of the HTTP server (0 picks a free port).", ge=0, le=65535)
    ] = 8080
    socket: Annotated[
        bool, _doc("Also serve the API on a Unix socket (a named pipe on Windows).")
    ] = True
    socket_path: Annotated[
        str, _doc("Unix socket path; empty means impasto.sock in the runtime dir.")
    ] = ""
    token: Annotated[
        str, _doc("API token; required on every request except /api/v1/health when set.")
    ] = ""
    allowed_hosts: Annotated[
        list[str], _doc("Extra Host header names accepted besides loopback names.")
    ] = msgspec.field(default_factory=list)
    allowed_origins: Annotated[
        list[str],
        _doc(
            "Extra browser origins allowed to change state, open WebSockets and read answers "
            "(CORS)."
        ),
    ] = msgspec.field(default_factory=list)
    data_dir: Annotated[str, _doc("Folder of the database, outputs, models and uploads.")] = ""
    runtime_dir: Annotated[str, _doc("Folder of the socket and the discovery file.")] = ""
    log_dir: Annotated[str, _doc("Folder of the log files.")] = ""
    output_dir: Annotated[str, _doc("Folder generated images are written to.")] = ""
    models_dir: Annotated[str, _doc("Folder installed models are read from.")] = ""
    temp_dir: Annotated[str, _doc("Folder for partial files (model installs in progress).")] = ""
    max_file_size: Annotated[int, _doc("Largest model file accepted, in bytes.", ge=1)] = (
        10 * 1024**3
    )
    install_roots: Annotated[
        list[str],
        _doc("Folders local install sources may come from; empty: home, data, temp, cwd."),
    ] = msgspec.field(default_factory=list)
    max_upload_size: Annotated[
        int, _doc("Largest uploaded init image or mask, in bytes.", ge=1)
    ] = 20 * 1024**2
    max_body_size: Annotated[int, _doc("Largest request body accepted, in bytes.", ge=1)] = (
        64 * 1024**2
    )
    default_model: Annotated[str, _doc("Model used when a request names none.")] = "impasto-shapes"
    show_test_models: Annotated[
        bool, _doc("List the bundled random-weight test models (the default model always shows).")
    ] = False
    keep_alive: Annotated[
        float, _doc("Seconds the worker keeps an idle model loaded.", ge=0, le=KEEP_ALIVE_MAX)
    ] = 300.0
    workers: Annotated[
        int, _doc("Inference worker processes; 0: one per NVIDIA GPU, or 1.", ge=0, le=64)
    ] = 0
    max_queue: Annotated[int, _doc("Most queued jobs; beyond it submits get 429.", ge=1)] = 1000
    upload_retention_hours: Annotated[
        float,
        _doc(
            "Hours an uploaded init image or mask is kept once no queued or running job uses "
            "it (0 = for ever).",
            ge=0,
            le=1_000_000,
        ),
    ] = 168
    max_attempts: Annotated[
        int, _doc("Times a job is tried when its worker dies.", ge=1, le=100)
    ] = 3
    rate_limit: Annotated[
        int, _doc("Most generate requests per minute per connection (0 = off).", ge=0)
    ] = 600
    max_connections: Annotated[
        int,
        msgspec.Meta(
            ge=1, description="Most open HTTP connections per listener; more wait until one closes."
        ),
    ] = 1024
    max_event_streams: Annotated[
        int,
        msgspec.Meta(
            ge=1, description="Most open event streams (SSE and WebSocket together); more get 503."
        ),
    ] = 256
    header_timeout: Annotated[
        float,
        msgspec.Meta(
            ge=1,
            le=60,
            description="Seconds a connection may stay idle or take to send a request's headers.",
        ),
    ] = 10.0
    body_timeout: Annotated[
        float,
        msgspec.Meta(
            ge=1,
            le=3600,
            description="Seconds a request's body may send nothing before it is answered 408.",
        ),
    ] = 30.0
    provider: Annotated[
        str, _doc("Execution provider: auto, cpu, cuda, tensorrt, directml, ...")
    ] = "auto"
    enable_tensorrt: Annotated[bool, _doc("Let 'auto' pick TensorRT when it is available.")] = False
    preview_every: Annotated[
        int, _doc("Send a preview image every N sampler steps (0 = off).", ge=0)
    ] = 2
    log_level: Annotated[str, _doc("Logging level: debug, info, warning or error.")] = "info"
    hf_token: Annotated[
        str, _doc("Hugging Face token for private or gated repos (else HF_TOKEN).")
    ] = ""
    hf_endpoint: Annotated[
        str, _doc("Hugging Face Hub URL; empty means HF_ENDPOINT or https://huggingface.co.")
    ] = ""
    model_catalog: Annotated[
        str, _doc("TOML file of installable short names; empty means the built-in catalog.")
    ] = ""
    api_server_stop: Annotated[
        bool, _doc("Enable A1111's /sdapi/v1/server-kill, -restart and -stop routes.")
    ] = False
    cluster: Annotated[
        str,
        _doc("Run workers on a Ray cluster: ray://HOST:PORT, HOST:PORT or auto (docs/cluster.md)."),
    ] = ""
    cluster_cpu_workers: Annotated[
        int,
        msgspec.Meta(
            ge=0, le=64, description="Workers per Ray node without a GPU (0: GPU nodes only)."
        ),
    ] = 1
    cluster_cache_size: Annotated[
        int,
        msgspec.Meta(
            ge=0, description="Bytes of head models a Ray node caches before evicting (LRU)."
        ),
    ] = 50 * 1024**3

    def __post_init__(self) -> None:
        # Settings with a closed set or a form (bounds are in each field's Meta).
        if self.log_level.lower() not in LOG_LEVELS:
            raise ValueError(
                f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}"
            )
        endpoint = urlsplit(self.hf_endpoint)
        if self.hf_endpoint and (endpoint.scheme not in ("http", "https") or not endpoint.netloc):
            raise ValueError(
                f"hf_endpoint must be an http:// or https:// URL, not {self.hf_endpoint!r}"
            )
        if self.cluster and not _cluster_address(self.cluster):
            raise ValueError(
                "cluster must be auto, HOST:PORT (a Ray cluster's GCS address) or "
                f"ray://HOST:PORT (Ray Client), not {self.cluster!r}"
            )


def _cluster_address(value: str) -> bool:
    """Whether ``value`` is one of the Ray addresses docs/cluster.md lists."""
    if value == "auto":
        return True
    rest = value.removeprefix("ray://")
    if "/" in rest or "@" in rest:
        return False
    try:
        address = urlsplit(f"ray://{rest}")
        port = address.port
    except ValueError:  # a port that is not a number or is out of range
        return False
    return bool(address.hostname) and port is not None and port > 0


def field_docs() -> dict[str, str]:
    """The one-line doc of every settings field, by name."""
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    docs: dict[str, str] = {}
    for f in info.fields:
        extra = f.type.extra_json_schema if isinstance(f.type, msgspec.inspect.Metadata) else None
        docs[f.name] = (extra or {}).get("description", "")
    return docs


def field_ranges() -> dict[str, str]:
    """``"0-65535"``, ``">= 1"``...: the bounds of every bounded numeric setting, by name."""
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    ranges: dict[str, str] = {}
    for f in info.fields:
        kind = f.type.type if isinstance(f.type, msgspec.inspect.Metadata) else f.type
        if not isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType):
            continue
        low, high = kind.ge, kind.le
        if low is not None and high is not None:
            ranges[f.name] = f"{low}-{high}"
        elif low is not None:
            ranges[f.name] = f">= {low}"
    return ranges


@dataclass(frozen=True)
class LoadedSettings:
    """The effective settings and, per field, where its value came from."""

    settings: Settings
    sources: dict[str, str]
    config_path: Path


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
    """``plugins`` must be a table of tables: the shape read_plugin_config relies on."""
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


def _invalid(key: str, value: Any, source: str, exc: msgspec.ValidationError) -> ValueError:
    """The error of one bad value, with the documented "Allowed" range when it is out of it."""
    message = str(exc).split(" - at ", 1)[0]
    allowed = field_ranges().get(key)
    if allowed and _RANGE_ERROR.match(message):
        return ValueError(
            f"setting {key!r} from {source}: {value!r} is out of range. Allowed: {allowed}."
        )
    return ValueError(f"setting {key!r} from {source}: {exc}")


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
    if _check_config_path(path, origin):
        data = _read_config(path)
        known = {k: v for k, v in data.items() if k in _field_types()}
        unknown = sorted(set(data) - set(known) - {"plugins"})
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        _check_plugins(data, path)
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
            f"setting 'model_catalog' from {sources['model_catalog']}: {catalog} {what} "
            "(leave it empty for the built-in catalog)"
        )
    return LoadedSettings(settings=settings, sources=sources, config_path=path)


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


def markdown_table() -> str:
    """The settings reference table of docs/configuration.md."""
    rows = [
        "| key (config.toml) | environment | `impasto serve` flag | default | meaning |",
        "|---|---|---|---|---|",
    ]
    defaults = Settings()
    docs, ranges = field_docs(), field_ranges()
    for f in msgspec.structs.fields(Settings):
        value = getattr(defaults, f.name)
        if isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, list):
            shown = "[]"
        elif isinstance(value, str):
            shown = f'"{value}"' if value else '"" (platform default)'
        else:
            shown = str(value)
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        meaning = docs[f.name] + (f" Allowed: {ranges[f.name]}." if f.name in ranges else "")
        rows.append(f"| `{f.name}` | `{env}` | `{flag}` | {shown} | {meaning} |")
    return "\n".join(rows)
