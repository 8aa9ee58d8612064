"""What an install request may ask for: its checks, run before anything is queued."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from impasto.engine.providers import GPU_PROVIDERS
from impasto.services.convert import missing_converter
from impasto.services.detect import detect_file, detect_folder
from impasto.services.errors import ConflictError, FieldError
from impasto.services.hub import hub_endpoint, hub_token
from impasto.services.known import KnownModel, made_from, variant_summary
from impasto.services.models import ModelCatalog
from impasto.services.safety import UnsafeContentError, check_id, slugify, walk_files
from impasto.services.sources import file_stem, local_path, names_its_type, parse_source
from impasto.services.stage_fetch import served_filename

PRECISIONS = ("", "fp32", "fp16", "int8")


def conversion_precision(requested: str, provider: str) -> str:
    """What a conversion writes: the asked precision, else fp16 when the workers run on a GPU.

    fp16 halves the weights and is what GPU providers run fastest; on the CPU provider fp16
    math is slower than fp32, so CPU machines keep fp32. int8 (never a default) is an fp32
    export whose UNet is then quantised.
    """
    if requested:
        return requested
    return "fp16" if provider in GPU_PROVIDERS else "fp32"


@dataclass(frozen=True)
class InstallOptions:
    """Daemon-wide settings installs need."""

    models_dir: Path
    staging_dir: Path
    max_file_size: int
    hf_endpoint: str = ""
    hf_token: str = ""
    catalog_file: str = ""
    concurrency: int = 1
    # Folders local install sources must lie in (the install_roots setting); empty: anywhere.
    install_roots: tuple[Path, ...] = ()
    # The workers' execution provider name, "" until one has started (for the fp16 default).
    provider: Callable[[], str] = lambda: ""
    provider_setting: str = "auto"  # the provider setting, to probe with before workers start
    enable_tensorrt: bool = False
    # A worker's command line; with ``--warm DIR`` it caches the optimised graphs of an
    # installed model (empty: no warm-up).
    warm_command: tuple[str, ...] = ()


class InstallerView(Protocol):
    """What the checks read of the installer."""

    options: InstallOptions
    catalog: ModelCatalog

    def machine_provider(self) -> str: ...

    def known(self) -> dict[str, KnownModel]: ...


def validate_install(
    installer: InstallerView, source_text: str, request: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The model id, source record and options of an install request (blocking).

    Every refusal is a FieldError naming the request field, or a ConflictError.
    """
    settings = installer.options
    roots = settings.install_roots
    # Before any worker or probe reported a provider, a catalog name resolves to the
    # portable build, which every provider runs.
    provider = installer.machine_provider()
    asked = request.get("precision") or ""
    if asked not in PRECISIONS:
        raise FieldError("precision", "must be fp32, fp16 or int8")
    source, default_id = parse_source(
        source_text,
        revision=request.get("revision"),
        subfolder=request.get("subfolder"),
        known=installer.known(),
        roots=roots,
        provider=provider,
        variant=request.get("variant") or "",
        precision=asked,
    )
    check_applies(source, request)
    if source["kind"] == "url" and not names_its_type(source["filename"]):
        # ".../api/download/models/128713": the server names the file (and so the model).
        endpoint, token = hub_endpoint(settings.hf_endpoint), hub_token(settings.hf_token)
        served = served_filename(source["url"], endpoint, token)
        if served:
            source["filename"] = served
            default_id = slugify(file_stem(served))
    model_id = request.get("id") or default_id
    try:
        check_id(model_id)
    except ValueError as exc:
        raise FieldError("id", str(exc)) from None
    precision = conversion_precision(asked, settings.provider())
    config = request.get("config") or ""
    if config.startswith(("/", ".", "~")):  # a folder, not a hub repo id
        folder = local_path("config", config, roots)
        if not folder.is_dir():
            raise FieldError("config", "must be a hub repo id or a folder holding model_index.json")
        config = str(folder)
    sha = (request.get("sha256") or "").lower()
    if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise FieldError("sha256", "must be 64 hex digits")
    if installer.catalog.find(model_id) is not None or (settings.models_dir / model_id).exists():
        raise ConflictError(f"a model named {model_id!r} is already installed")
    if source["kind"] == "path":
        check_convertible(Path(source["path"]), roots)
    note = ""
    if source.get("catalog"):
        build = installer.known()[source["catalog"]].variants[source["variant"]]
        note = f"{source['catalog']}: {variant_summary(build, provider)}"
        if asked == "int8" and build.precision not in ("", *made_from("int8")):
            raise FieldError(
                "precision",
                f"int8 quantises an fp32 UNet; {source['catalog']}'s {build.key} build is "
                f"{build.precision}: name an fp32 build with variant, or leave precision out",
            )
        problem = missing_converter() if build.convert and request.get("convert", True) else None
        if problem:  # the problem says how to get the converter: the summary need not
            summary = variant_summary(build, provider, hint=False)
            raise FieldError("source", f"{source['catalog']}: {summary}; {problem}")
    options = {
        "force": bool(request.get("force")),
        "note": note,
        "sha256": sha,
        "precision": precision,
        "precision_asked": bool(request.get("precision")),
        "convert": request.get("convert", True),
        "config": config,
        "name": request.get("name") or model_id,
        "description": request.get("description") or source.get("description", ""),
        "license": request.get("license") or source.get("license", ""),
        "family": source.get("family", ""),
    }
    return model_id, source, options


def check_applies(source: dict[str, Any], request: dict[str, Any]) -> None:
    """A field that means nothing for this kind of source is refused, not ignored."""
    kind = source["kind"]
    what = {"url": "a URL", "path": "a local path"}.get(kind, "")
    for name in ("revision", "subfolder"):
        if request.get(name) and what:
            raise FieldError(
                name, f"applies to Hugging Face sources (a hub repo or a catalog name), not {what}"
            )
    if request.get("sha256") and kind == "hub":
        raise FieldError(
            "sha256",
            "checks one file (a URL or a local file); a hub repo's files are checked against "
            "the hub's own sha256",
        )
    if request.get("sha256") and kind == "path" and Path(source["path"]).is_dir():
        raise FieldError("sha256", "checks one file; this source is a folder")


def check_convertible(path: Path, roots: Sequence[Path]) -> None:
    """A local model that needs the exporter fails now, not after copying, without it."""
    if path.is_dir():
        try:  # lstat only, so no FIFO or device is opened by the detection below
            list(walk_files(path, roots))
        except UnsafeContentError as exc:
            raise FieldError("source", str(exc)) from None
    try:
        found = detect_folder(path) if path.is_dir() else detect_file(path)
    except (ValueError, OSError, UnsafeContentError):
        return  # the install reports what is wrong with the files
    if found.layout != "onnx" and found.type == "checkpoint":
        problem = missing_converter()
        if problem:
            raise FieldError("source", problem)
