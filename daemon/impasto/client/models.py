"""Model-manager calls and results of the public API (/models, /models/installs, load/unload)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from impasto import wire
from impasto.client.core import Call, _decoder, api_path
from impasto.client.types import ModelInfo

ModelDetail = ModelInfo
CatalogVariant = wire.CatalogVariant
CatalogEntry = wire.CatalogEntry


InstallStatus = wire.InstallInfo
LoadedModel = wire.LoadedModel


def model(model_id: str) -> Call[ModelDetail]:
    """GET /models/{id}."""
    return Call("GET", api_path("models", model_id), _decoder(ModelDetail))


MODEL_TYPES = wire.MODEL_TYPES


def model_list(types: Sequence[str] = ()) -> Call[list[ModelDetail]]:
    """GET /models with every field; only ``types`` (checkpoint, lora, ...) when given."""
    params: dict[str, str | int] = {"type": ",".join(types)} if types else {}
    return Call("GET", "/models", _decoder(list[ModelDetail]), params=params)


def catalog() -> Call[list[CatalogEntry]]:
    """GET /models/catalog."""
    return Call("GET", "/models/catalog", _decoder(list[CatalogEntry]))


def install(source: str, **options: Any) -> Call[InstallStatus]:
    """POST /models/install."""
    body = {"source": source, **{k: v for k, v in options.items() if v is not None}}
    return Call("POST", "/models/install", _decoder(InstallStatus), body=body)


def install_status(install_id: str) -> Call[InstallStatus]:
    """GET /models/installs/{id}."""
    return Call("GET", api_path("models", "installs", install_id), _decoder(InstallStatus))


def installs() -> Call[list[InstallStatus]]:
    """GET /models/installs."""
    return Call("GET", "/models/installs", _decoder(list[InstallStatus]))


def cancel_install(install_id: str) -> Call[InstallStatus]:
    """POST /models/installs/{id}/cancel."""
    return Call(
        "POST", api_path("models", "installs", install_id, "cancel"), _decoder(InstallStatus)
    )


def remove(model_id: str, force: bool = False) -> Call[ModelDetail]:
    """DELETE /models/{id}."""
    params: dict[str, str | int] = {"force": "true"} if force else {}
    return Call("DELETE", api_path("models", model_id), _decoder(ModelDetail), params=params)


def loaded() -> Call[list[LoadedModel]]:
    """GET /models/loaded."""
    return Call("GET", "/models/loaded", _decoder(list[LoadedModel]))


LOAD_TIMEOUT = 660.0  # seconds a load's answer may take (the daemon waits up to 600)


def load(model_id: str, unload: bool = False, keep_alive: float | None = None) -> Call[int]:
    """POST /models/{id}/load (or /unload), a load held ``keep_alive`` seconds (None: the
    daemon's keep_alive setting; 0: dropped once idle); the number of workers told. A load
    answers once the workers hold the model; one they could not load is an ApiError (422)."""

    def parse(response: Any) -> int:
        return _decoder(wire.LoadResult)(response).workers

    action = "unload" if unload else "load"
    params: dict[str, str | int] = {}
    if keep_alive is not None and not unload:
        params["keep_alive"] = f"{keep_alive:g}"
    # The daemon answers a load once every worker holds the model (up to 10 minutes, when a
    # worker finishes a job first): a read may wait as long.
    timeout = None if unload else LOAD_TIMEOUT
    return Call(
        "POST", api_path("models", model_id, action), parse, params=params, read_timeout=timeout
    )
