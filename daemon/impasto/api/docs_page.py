"""The API docs page at /schema: Swagger UI from bundled files, with no inline script or style.

Litestar's page embeds the schema in an inline ``<script>``, which the Content-Security-Policy
(impasto.api.headers) refuses; this one loads ``swagger-init.js``, which fetches the schema.
"""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import SwaggerRenderPlugin

ASSETS = "/schema-assets"


class SwaggerPage(SwaggerRenderPlugin):
    """Swagger UI at /schema, served entirely from /schema-assets."""

    def __init__(self) -> None:
        super().__init__(
            js_url=f"{ASSETS}/swagger-ui-bundle.js",
            css_url=f"{ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
            path="/",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = escape(str(openapi_schema["info"]["title"]))
        return f"""<!DOCTYPE html>
<html>
<head>
  <title>{title}</title>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
  <link href="{self.css_url}" rel="stylesheet">
  <script src="{self.js_url}"></script>
  <script src="{self.standalone_preset_js_url}"></script>
  <script src="{ASSETS}/swagger-init.js" defer></script>
</head>
<body>
  <div id="swagger-container" data-spec-url="/schema/openapi.json"></div>
</body>
</html>
""".encode()
