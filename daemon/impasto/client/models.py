"""Model-manager calls and results of the public API (/models, /models/installs, load/unload)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from impasto import wire
from impasto.client.core import Call, _decoder
from impasto.client.types import ModelInfo, _Result

ModelDetail = ModelInfo
CatalogVariant = wire.CatalogVariant
CatalogEntry = wire.CatalogEntry


class InstallStatus(_Result):
    """One install task and its progress (GET /models/installs/{id})."""

    id: str
    model_id: str
    source: str
    status: str
    stage: str = ""
    bytes_done: int = 0
    bytes_total: int = 0
    error: str | None = None
    note: str = ""
    warning: str = ""

    @property
    def finished(self) -> bool:
        """Whether the install ended (completed, failed or cancelled)."""
        return self.status in ("completed", "failed", "cancelled")


class LoadedModel(_Result):
    """A model a worker holds (GET /models/loaded)."""

    model: str
    path: str = ""
    worker: str = ""
    size: int = 0
    expires_at: str | None = None
    expires_in: float = 0.0


class _LoadResult(msgspec.Struct):
    workers: int = 0


def model(model_id: str) -> Call[ModelDetail]:
    """GET /models/{id}."""
    return Call("GET", f"/models/{model_id}", _decoder(ModelDetail))


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
    return Call("GET", f"/models/installs/{install_id}", _decoder(InstallStatus))


def installs() -> Call[list[InstallStatus]]:
    """GET /models/installs."""
    return Call("GET", "/models/installs", _decoder(list[InstallStatus]))


def cancel_install(install_id: str) -> Call[InstallStatus]:
    """POST /models/installs/{id}/cancel."""
    return Call("POST", f"/models/installs/{install_id}/cancel", _decoder(InstallStatus))


def remove(model_id: str, force: bool = False) -> Call[ModelDetail]:
    """DELETE /models/{id}."""
    params: dict[str, str | int] = {"force": "true"} if force else {}
    return Call("DELETE", f"/models/{model_id}", _decoder(ModelDetail), params=params)


def loaded() -> Call[list[LoadedModel]]:
    """GET /models/loaded."""
    return Call("GET", "/models/loaded", _decoder(list[LoadedModel]))


def load(model_id: str, unload: bool = False) -> Call[int]:
    """POST /models/{id}/load (or /unload); the number of workers told."""

    def parse(response: Any) -> int:
        return _decoder(_LoadResult)(response).workers

    action = "unload" if unload else "load"
    return Call("POST", f"/models/{model_id}/{action}", parse)
