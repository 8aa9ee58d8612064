"""Models: list, describe, install (with progress), remove, and load/unload in the workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import Meta

from impasto.api.dependencies import Catalog, Jobs, MachineProvider, Manager
from impasto.api.params import comma_list, ranged, read_comma_list
from impasto.engine.runs_on import short_name
from impasto.services.installs import install_json
from impasto.services.known import CatalogRow
from impasto.services.model_entry import ModelEntry
from impasto.wire import (
    MODEL_TYPES,
    CatalogEntry,
    CatalogVariant,
    InstallInfo,
    KeepAlive,
    LoadedModel,
    LoadResult,
    ModelDefaults,
    ModelDetail,
    Schema,
    utc,
)


class InstallRequest(Schema):
    """Where to install a model from, and how."""

    source: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=4096,
            description="A catalog name (sd-turbo), a hub repo id (owner/name), a URL or a path",
        ),
    ]
    id: Annotated[str, Meta(max_length=80)] | None = None
    name: Annotated[str, Meta(max_length=200)] | None = None
    revision: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    subfolder: Annotated[str, Meta(max_length=500)] | None = None
    sha256: Annotated[str, Meta(max_length=64)] | None = None
    precision: (
        Annotated[
            Literal["fp32", "fp16", "int8"],
            Meta(
                description="What a conversion writes (default: fp16 on GPU providers, else "
                "fp32); int8: an fp32 model whose UNet is quantised to int8 (CPU)"
            ),
        ]
        | None
    ) = None
    convert: bool = True
    config: (
        Annotated[
            str,
            Meta(
                max_length=500,
                description="For a single-file checkpoint: the diffusers repo id or folder whose "
                "configs describe it (default: picked from its weights and fetched from the hub)",
            ),
        ]
        | None
    ) = None
    description: Annotated[str, Meta(max_length=2000)] | None = None
    license: Annotated[str, Meta(max_length=200)] | None = None
    variant: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=40,
                description="A catalog model's build: cuda, directml, coreml, portable, ... "
                "(default: the one for this machine's execution provider)",
            ),
        ]
        | None
    ) = None
    force: Annotated[
        bool,
        Meta(description="Install even when this machine's execution provider cannot run it"),
    ] = False


def model_detail(m: ModelEntry, shown: Callable[[str], str], provider: str = "") -> ModelDetail:
    """The wire form of an installed model; ``shown`` labels its path (``<models>/...``: no
    local path reaches a client), ``provider`` is this machine's, when known."""
    capability = m.capability
    runs_here = capability.runs(provider) if capability and provider else None
    return ModelDetail(
        runs_on=[short_name(p) for p in capability.runs_on] if capability else [],
        runs_here=runs_here,
        not_here=capability.why_not(provider) if capability and runs_here is False else "",
        runs_note=capability.notes.get(provider, "") if capability and runs_here else "",
        id=m.id,
        name=m.name,
        type=m.type,
        family=m.family,
        path=shown(str(m.path)),
        size=m.size,
        read_only=m.read_only,
        inpaint=m.inpaint,
        prediction_type=m.prediction_type,
        zero_snr=m.zero_snr,
        defaults=ModelDefaults(**asdict(m.defaults)) if m.type == "checkpoint" else None,
        precision=m.precision,
        version=m.version,
        description=m.description,
        hash=m.hash,
        source=m.source,
        license=m.license,
        active=m.active,
        clip_skip_max=m.clip_skip_max,
        created_at=utc(m.created_at),
        updated_at=utc(m.updated_at),
        problem=m.problem,
    )


def install_info(record: Any) -> InstallInfo:
    body = install_json(record)
    for key in ("created_at", "updated_at", "finished_at"):
        body[key] = utc(body[key])
    return msgspec.convert(body, InstallInfo, from_attributes=True)


def catalog_entry(row: CatalogRow) -> CatalogEntry:
    """The wire form of a catalog row."""
    entry = row.entry
    variants = [
        CatalogVariant(**{k: v for k, v in asdict(variant).items() if k != "sha256"})
        for variant in entry.variants.values()
    ]
    return CatalogEntry(
        name=entry.name,
        family=entry.family,
        license=entry.license,
        description=entry.description,
        checked=entry.checked,
        no_portable=entry.no_portable,
        variants=variants,
        chosen=row.chosen.key if row.chosen else "",
        summary=row.summary,
    )


class ModelsController(Controller):
    path = "/models"
    tags = ["models"]

    @get("/", summary="Installed models: checkpoints (the bundled demo ones too), LoRAs, VAEs")
    async def list_models(
        self,
        catalog: Catalog,
        jobs: Jobs,
        machine_provider: MachineProvider,
        kinds: Annotated[list[str] | None, comma_list(MODEL_TYPES, name="type")] = None,
    ) -> list[ModelDetail]:
        wanted = read_comma_list(kinds, MODEL_TYPES, "type")
        # Describing model folders reads ONNX headers and sizes folders: not on the event loop.
        entries = await asyncio.to_thread(catalog.list_all)
        shown = jobs.runner.public_error
        return [
            model_detail(m, shown, machine_provider)
            for m in entries
            if not wanted or m.type in wanted
        ]

    @get("/catalog", summary="The model catalog, with the build this machine would get")
    async def catalog(self, manager: Manager) -> list[CatalogEntry]:
        return [catalog_entry(row) for row in manager.installer.catalog_listing()]

    @get("/installs", summary="Running and recent installs with progress")
    async def installs(self, manager: Manager) -> list[InstallInfo]:
        return [install_info(r) for r in manager.installer.list_installs()]

    @get("/installs/{install_id:str}", summary="One install and its progress")
    async def install(self, manager: Manager, install_id: FromPath[str]) -> InstallInfo:
        return install_info(manager.installer.get(install_id))

    @post("/installs/{install_id:str}/cancel", status_code=200, summary="Cancel an install")
    async def cancel_install(self, manager: Manager, install_id: FromPath[str]) -> InstallInfo:
        return install_info(await manager.installer.cancel(install_id))

    @delete(
        "/installs/{install_id:str}", status_code=204, summary="Dismiss a finished install's row"
    )
    async def dismiss_install(self, manager: Manager, install_id: FromPath[str]) -> None:
        manager.installer.dismiss(install_id)

    @post("/install", status_code=202, summary="Install from the catalog, the hub, a URL or a path")
    async def install_model(self, manager: Manager, data: JSONBody[InstallRequest]) -> InstallInfo:
        request = {k: v for k, v in msgspec.structs.asdict(data).items() if k != "source"}
        record = await manager.installer.submit(data.source, **request)
        return install_info(record)

    @get("/loaded", summary="Models the workers hold and when each expires (like ollama ps)")
    async def loaded(self, manager: Manager) -> list[LoadedModel]:
        # Matching loaded models to installed ones lists the models folder: in a thread.
        return await asyncio.to_thread(manager.loaded)

    @get("/{model_id:str}", summary="One installed model")
    async def get_model(
        self, manager: Manager, machine_provider: MachineProvider, model_id: FromPath[str]
    ) -> ModelDetail:
        # Finding it reads the models folder (a model's graphs, the adapter folders): a thread.
        found = await asyncio.to_thread(manager.get, model_id)
        return model_detail(found, manager.jobs.runner.public_error, machine_provider)

    @delete("/{model_id:str}", status_code=200, summary="Remove a model (409 while jobs use it)")
    async def remove(
        self, manager: Manager, model_id: FromPath[str], force: FromQuery[bool] = False
    ) -> ModelDetail:
        removed = await manager.remove(model_id, force=force)
        return model_detail(removed, manager.jobs.runner.public_error)

    @post("/{model_id:str}/load", status_code=200, summary="Load a model into the workers now")
    async def load(
        self,
        manager: Manager,
        model_id: FromPath[str],
        keep_alive: Annotated[float | None, ranged(KeepAlive)] = None,
    ) -> LoadResult:
        return await manager.load(model_id, keep_alive)

    @post("/{model_id:str}/unload", status_code=200, summary="Drop a model from the workers")
    async def unload(self, manager: Manager, model_id: FromPath[str]) -> LoadResult:
        return LoadResult(model=model_id, workers=await manager.unload(model_id))
