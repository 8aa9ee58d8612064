"""Builds the ASGI application: routes, error handlers, docs, static UI and security."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from impasto.api.compat import compat_routers
from impasto.api.dependencies import DEPENDENCIES
from impasto.api.errors import EXCEPTION_HANDLERS
from impasto.api.routes.events import EventsController
from impasto.api.routes.generate import GenerateController
from impasto.api.routes.images import ImagesController
from impasto.api.routes.models import ModelsController
from impasto.api.routes.plugins import PluginsController
from impasto.api.routes.queue import HistoryController, QueueController
from impasto.api.routes.system import SystemController
from impasto.api.security import Authenticator, Policy, SecurityMiddleware
from impasto.api.static import compression, static_routers
from impasto.resources import ui_static_dir
from impasto.services.container import Services

DOCS_ASSETS = Path(__file__).parent / "docs_assets"
API_PREFIX = "/api/v1"


def _is_generate(request: Request[Any, Any, Any]) -> bool:
    return request.method == "POST" and request.url.path.rstrip("/") == f"{API_PREFIX}/generate"


def build_litestar(services: Services, extra_routers: list[Router] | None = None) -> Litestar:
    """The Litestar app without the security wrapper (tests of routes alone use this)."""
    settings = services.settings
    api = Router(
        path=API_PREFIX,
        route_handlers=[
            GenerateController,
            QueueController,
            HistoryController,
            ImagesController,
            SystemController,
            ModelsController,
            EventsController,
            PluginsController,
        ],
    )
    docs_router, *ui_routers = static_routers(ui_static_dir(), DOCS_ASSETS)
    middleware = []
    if settings.rate_limit > 0:
        limiter = RateLimitConfig(
            rate_limit=("minute", settings.rate_limit), check_throttle_handler=_is_generate
        )
        middleware.append(limiter.middleware)
    swagger = SwaggerRenderPlugin(
        js_url="/schema-assets/swagger-ui-bundle.js",
        css_url="/schema-assets/swagger-ui.css",
        standalone_preset_js_url="/schema-assets/swagger-ui-standalone-preset.js",
        path="/",
        favicon="<link rel='icon' type='image/png' href='/schema-assets/favicon-32x32.png'>",
    )
    return Litestar(
        route_handlers=[api, docs_router, *compat_routers(), *(extra_routers or []), *ui_routers],
        state=State({"services": services}),
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=middleware,
        compression_config=compression(),
        request_max_body_size=settings.max_body_size,
        # The daemon configures logging itself (impasto.logs); Litestar's default would replace
        # the root handlers, and with them daemon.log.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="Impasto",
            version=services.version,
            description="Local Stable Diffusion daemon. Docs: docs/api.md in the repository.",
            path="/schema",
            render_plugins=[swagger],
        ),
        debug=False,
    )


def create_app(services: Services, extra_routers: list[Router] | None = None) -> Any:
    """The full ASGI app: Litestar behind the Host/Origin/token checks."""
    settings = services.settings
    policy = Policy.build(settings.allowed_hosts, settings.allowed_origins)
    return SecurityMiddleware(
        build_litestar(services, extra_routers), policy, Authenticator(settings.token)
    )
