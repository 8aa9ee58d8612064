"""AUTOMATIC1111's actions: model unload/reload, what Impasto cannot do, and server control.

Features Impasto does not have (interrogation, embedding and hypernetwork training) answer 501
in A1111's error shape with what to do instead. The server routes exist only with the
``api_server_stop`` setting, like A1111's ``--api-server-stop``; without it they are 404.
A route that can only answer 501 (and ``server-restart``, which does with that setting, as
A1111 does) is routed for A1111's clients but left out of the API document, which lists what
the daemon serves.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from litestar import Controller, Response, post, route
from litestar.enums import HttpMethod, MediaType
from litestar.params import FromPath, JSONBody

from impasto.api.compat.errors import CompatError, fastapi_detail
from impasto.api.dependencies import AllServices
from impasto.services import compat
from impasto.services.container import Services

INTERROGATORS = ("clip", "deepdanbooru")
NO_TRAINING = (
    "training is not available in Impasto; train with another tool (kohya_ss, A1111) and "
    "install the result with `impasto models add`"
)


def _not_found() -> Response[Any]:
    """What FastAPI answers for a route that does not exist."""
    return fastapi_detail(404, "Not Found")


def _stop_soon(services: Services) -> Response[Any] | None:
    """Stop the daemon gracefully right after answering; a 404 unless the setting allows it."""
    if not services.settings.api_server_stop:
        return _not_found()
    # SIGTERM runs the daemon's normal shutdown (jobs, workers, plugins) after this response.
    asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGTERM)
    return None


class A1111ActionsController(Controller):
    path = "/"
    tags = ("automatic1111",)

    @post("/unload-checkpoint", status_code=200, summary="Drop the current model from workers")
    async def unload_checkpoint(self, services: AllServices) -> dict[str, Any]:
        if services.models is not None:
            await services.models.unload(compat.current_checkpoint(services))
        return {}

    @post("/reload-checkpoint", status_code=200, summary="Load the current model into workers")
    async def reload_checkpoint(self, services: AllServices) -> dict[str, Any]:
        if services.models is not None:
            await services.models.load(compat.current_checkpoint(services))
        return {}

    @post("/interrogate", status_code=200, include_in_schema=False)
    async def interrogate(self, data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        if not data.get("image"):
            raise CompatError(404, "Image not found")
        if str(data.get("model", "clip")) not in INTERROGATORS:
            raise CompatError(404, "Model not found")
        raise CompatError(
            501,
            "interrogate needs a captioning model (CLIP or DeepDanbooru), which Impasto does "
            "not have; write the prompt yourself or caption with another tool",
        )

    @post(
        ["/create/embedding", "/create/hypernetwork", "/train/embedding", "/train/hypernetwork"],
        status_code=200,
        include_in_schema=False,
    )
    async def training(self) -> dict[str, Any]:
        raise CompatError(501, NO_TRAINING)

    @post("/server-kill", status_code=200, summary="Stop the daemon (with api_server_stop)")
    async def server_kill(self, services: AllServices) -> Response[Any]:
        return _stop_soon(services) or Response(None, status_code=200)

    @post("/server-stop", status_code=200, summary="Stop the daemon (with api_server_stop)")
    async def server_stop(self, services: AllServices) -> Response[Any]:
        return _stop_soon(services) or Response(
            "Stopping.", status_code=200, media_type=MediaType.TEXT
        )

    @post("/server-restart", status_code=200, include_in_schema=False)
    async def server_restart(self, services: AllServices) -> Response[Any]:
        if not services.settings.api_server_stop:
            return _not_found()
        # As A1111 answers when it was not started by a launcher that restarts it.
        return Response(None, status_code=501)

    @route(
        "/{rest:path}",
        http_method=[HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.DELETE],
        status_code=404,
        include_in_schema=False,
    )
    async def unknown(self, rest: FromPath[str]) -> Response[Any]:
        return _not_found()
