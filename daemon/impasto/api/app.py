"""Builds the ASGI application: routes, error handlers, docs, static UI and security."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from impasto.api.bodies import KNOWN_FIELDS_ONLY, checked_body
from impasto.api.compat import compat_routers
from impasto.api.dependencies import DEPENDENCIES
from impasto.api.docs_page import SwaggerPage
from impasto.api.errors import EXCEPTION_HANDLERS
from impasto.api.head import HeadAsGet
from impasto.api.headers import SecurityHeadersMiddleware
from impasto.api.limits import BodyLimits, RateLimiter, StreamSlots
from impasto.api.openapi_doc import OpenAPIJson
from impasto.api.options import point_options_at_their_routes
from impasto.api.params import note_single_valued_params, one_value_each
from impasto.api.routes.events import EventsController
from impasto.api.routes.generate import GenerateController
from impasto.api.routes.images import ImagesController
from impasto.api.routes.models import ModelsController
from impasto.api.routes.plugins import PluginsController
from impasto.api.routes.queue import HistoryController, QueueController
from impasto.api.routes.system import SystemController
from impasto.api.routes.upscale import UpscaleController
from impasto.api.security import PUBLIC, Authenticator, Policy, SecurityMiddleware, token_guard
from impasto.api.static import compression, static_routers
from impasto.resources import ui_static_dir
from impasto.services.container import Services

DOCS_ASSETS = Path(__file__).parent / "docs_assets"
API_PREFIX = "/api/v1"


async def checked_request(request: Request[Any, Any, Any]) -> None:
    """Before-request hook (after the token guard): each single-valued query parameter sent
    once (api/params.py), then the body (api/bodies.py)."""
    one_value_each(request)
    await checked_body(request)


def build_litestar(services: Services, extra_routers: list[Router] | None = None) -> Litestar:
    """The Litestar app without the security wrapper (tests of routes alone use this)."""
    settings = services.settings
    api = Router(
        path=API_PREFIX,
        opt={KNOWN_FIELDS_ONLY: True},
        route_handlers=[
            GenerateController,
            QueueController,
            HistoryController,
            ImagesController,
            SystemController,
            ModelsController,
            EventsController,
            PluginsController,
            UpscaleController,
        ],
    )
    docs_router, *ui_routers = static_routers(ui_static_dir(), DOCS_ASSETS)
    middleware: list[Any] = [
        BodyLimits(settings.body_timeout, settings.max_body_size).middleware,
        StreamSlots(settings.max_event_streams).middleware,
    ]
    if settings.rate_limit > 0:
        middleware.append(RateLimiter(settings.rate_limit).middleware)
    app = Litestar(
        route_handlers=[api, docs_router, *compat_routers(), *(extra_routers or []), *ui_routers],
        state=State({"services": services}),
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=middleware,
        before_request=checked_request,
        guards=[token_guard(Authenticator(settings.token))],
        compression_config=compression(),
        # BodyLimits bounds every body (max_body_size, body_timeout) with messages that name
        # the settings; Litestar's own check would answer first, with none.
        request_max_body_size=None,
        # The daemon configures logging itself (impasto.logs); Litestar's default would replace
        # the root handlers, and with them daemon.log.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="Impasto",
            version=services.version,
            description="Local Stable Diffusion daemon. Docs: docs/api.md in the repository.",
            path="/schema",
            openapi_router=Router(
                path="/schema", route_handlers=[], opt={PUBLIC: True}, include_in_schema=False
            ),
            render_plugins=[SwaggerPage(), OpenAPIJson()],
        ),
        debug=False,
    )
    point_options_at_their_routes(app)
    note_single_valued_params(app)
    return app


def create_app(services: Services, extra_routers: list[Router] | None = None) -> Any:
    """The full ASGI app: Litestar (a guard checks the token) behind Host/Origin checks, with
    ``HEAD`` served as ``GET`` on every route (api/head.py)."""
    settings = services.settings
    policy = Policy.build(settings.allowed_hosts, settings.allowed_origins)
    return HeadAsGet(
        SecurityHeadersMiddleware(
            SecurityMiddleware(build_litestar(services, extra_routers), policy)
        )
    )
