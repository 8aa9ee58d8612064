"""AUTOMATIC1111's listings of installed things, with its response shapes.

What Impasto has no such thing for (hypernetworks, face restorers, Real-ESRGAN models,
extensions) is an empty list, as in an A1111 without them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, get, post

from impasto.api.compat.a1111_flags import command_line_flags
from impasto.api.compat.a1111_schemas import (
    EmbeddingItem,
    EmbeddingsResponse,
    ExtensionItem,
    FaceRestorerItem,
    HypernetworkItem,
    LatentUpscalerModeItem,
    MemoryResponse,
    PromptStyleItem,
    RealesrganItem,
    SDVaeItem,
)
from impasto.api.dependencies import AllServices
from impasto.engine.upscale_latents import UPSCALER_LABELS
from impasto.services import compat_assets


class A1111ListsController(Controller):
    path = "/"
    tags = ("automatic1111",)

    @get("/sd-vae", summary="Installed VAEs (the models folder's vae/)")
    async def sd_vae(self, services: AllServices) -> list[SDVaeItem]:
        vaes = await asyncio.to_thread(compat_assets.installed_vaes, services)
        return [SDVaeItem(**vae) for vae in vaes]

    @post("/refresh-vae", status_code=200, summary="Rescan VAEs (read afresh on every call)")
    async def refresh_vae(self, services: AllServices) -> None:
        await asyncio.to_thread(compat_assets.installed_vaes, services)

    @post("/refresh-loras", status_code=200, summary="Rescan LoRAs (read afresh on every call)")
    async def refresh_loras(self, services: AllServices) -> None:
        await asyncio.to_thread(compat_assets.installed_loras, services)

    @get("/embeddings", summary="Installed textual inversion embeddings")
    async def embeddings(self, services: AllServices) -> EmbeddingsResponse:
        found = await asyncio.to_thread(compat_assets.installed_embeddings, services)
        return EmbeddingsResponse(
            loaded={name: EmbeddingItem(**item) for name, item in found["loaded"].items()},
            skipped={name: EmbeddingItem(**item) for name, item in found["skipped"].items()},
        )

    @post("/refresh-embeddings", status_code=200, summary="Rescan embeddings")
    async def refresh_embeddings(self, services: AllServices) -> None:
        await asyncio.to_thread(compat_assets.installed_embeddings, services)

    @get("/prompt-styles", summary="The styles plugin's prompt styles")
    async def prompt_styles(self, services: AllServices) -> list[PromptStyleItem]:
        styles = await asyncio.to_thread(compat_assets.prompt_styles, services)
        return [PromptStyleItem(**style) for style in styles]

    @get("/latent-upscale-modes", summary="Hires fix upscalers by their A1111 names")
    async def latent_upscale_modes(self) -> list[LatentUpscalerModeItem]:
        return [
            LatentUpscalerModeItem(name=label)
            for key, label in UPSCALER_LABELS.items()
            if key.startswith("latent")
        ]

    @get("/memory", summary="RAM and, where present, NVIDIA GPU memory")
    async def memory(self) -> MemoryResponse:
        report = await asyncio.to_thread(compat_assets.memory_report)
        return MemoryResponse(ram=report["ram"], cuda=report["cuda"])

    @get("/cmd-flags", summary="The daemon's settings under A1111's command line flag names")
    async def cmd_flags(self, services: AllServices) -> dict[str, Any]:
        return command_line_flags(services)

    @get("/hypernetworks", summary="Hypernetworks (Impasto runs none)")
    async def hypernetworks(self) -> list[HypernetworkItem]:
        return []

    @get("/face-restorers", summary="Face restorers (Impasto has none)")
    async def face_restorers(self) -> list[FaceRestorerItem]:
        return []

    @get("/realesrgan-models", summary="Real-ESRGAN models (see /upscalers for ONNX upscalers)")
    async def realesrgan_models(self) -> list[RealesrganItem]:
        return []

    @get("/extensions", summary="A1111 extensions (Impasto has plugins instead)")
    async def extensions(self) -> list[ExtensionItem]:
        return []
