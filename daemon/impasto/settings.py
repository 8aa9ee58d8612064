"""One typed settings object: defaults < config.toml < IMPASTO_* environment < CLI flags.

The fields, their docs and ranges live here; reading them from the four sources is
``impasto.settings_load``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from impasto.wire.requests import KEEP_ALIVE_MAX

APP_NAME = "impasto"
ENV_PREFIX = "IMPASTO_"


def _doc(
    text: str, *, ge: int | None = None, le: int | None = None, secret: bool = False
) -> msgspec.Meta:
    """The field's one-line doc and its bounds, checked on every load; ``secret``: a value
    kept off screens and logs (``secret_fields``)."""
    return msgspec.Meta(description=text, ge=ge, le=le, extra={"secret": True} if secret else None)


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
        str,
        _doc("API token; required on every request except /api/v1/health when set.", secret=True),
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
    max_history: Annotated[
        int,
        _doc(
            "Most finished jobs kept in the history; older ones are removed at start and "
            "hourly, their images stay in the output folder (0 = all).",
            ge=0,
            le=100_000_000,
        ),
    ] = 0
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
        str, _doc("Hugging Face token for private or gated repos (else HF_TOKEN).", secret=True)
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
        _doc(
            "Run workers on a Ray cluster: HOST:PORT (its GCS address) or auto (docs/cluster.md)."
        ),
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
        if self.cluster.startswith("ray://"):
            raise ValueError(
                f"cluster = {self.cluster!r}: Ray Client (ray://) cannot carry the workers' "
                "message streams; run the daemon on a machine of the cluster (`ray start "
                "--address=HEAD:6379`) with cluster = 'auto', or give the GCS address HOST:PORT "
                "(docs/cluster.md)"
            )
        if self.cluster and not _cluster_address(self.cluster):
            raise ValueError(
                "cluster must be auto or HOST:PORT (a Ray cluster's GCS address), not "
                f"{self.cluster!r}"
            )


def _cluster_address(value: str) -> bool:
    """Whether ``value`` is one of the Ray addresses docs/cluster.md lists."""
    if value == "auto":
        return True
    if "/" in value or "@" in value:
        return False
    try:
        address = urlsplit(f"ray://{value}")
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


def secret_fields() -> frozenset[str]:
    """The settings whose values are secrets (tokens): printed masked unless asked for."""
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    return frozenset(
        f.name
        for f in info.fields
        if isinstance(f.type, msgspec.inspect.Metadata) and (f.type.extra or {}).get("secret")
    )


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
