"""Noticing that a client has gone: work done for a request nobody waits on any more stops."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request


async def hung_up(request: Request[Any, Any, Any]) -> None:
    """Returns once the client has closed the connection (the body is read by then); never,
    where the server cannot say (a failed receive is no hang-up)."""
    try:
        while (await request.receive())["type"] != "http.disconnect":
            pass
    except Exception:  # the work runs to its end, as it would without this watch
        await asyncio.Event().wait()


async def done_before_hang_up(request: Request[Any, Any, Any], work: asyncio.Future[Any]) -> bool:
    """Wait for ``work`` or for the client to hang up, whichever comes first: True when
    ``work`` is done (it is left running otherwise: stopping it is the caller's part)."""
    gone = asyncio.ensure_future(hung_up(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    return work.done()
