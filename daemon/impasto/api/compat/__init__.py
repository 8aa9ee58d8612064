"""APIs other tools already speak: AUTOMATIC1111 (/sdapi/v1) and OpenAI images (/v1)."""

from __future__ import annotations

from litestar import Router

from impasto.api.compat.a1111 import a1111_router
from impasto.api.compat.openai import openai_router


def compat_routers() -> list[Router]:
    """Fresh routers for both compatible APIs, to mount on the app."""
    return [a1111_router(), openai_router()]
