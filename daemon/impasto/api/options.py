"""``OPTIONS`` answers list every method of the path.

Litestar 2 adds an ``OPTIONS`` handler to each route it builds, and that handler reads the
methods of the route it was made for. A path whose methods come from several handlers (``GET``,
``PATCH`` and ``DELETE`` on ``/generate/{job_id}``) is rebuilt once per handler, and the
``OPTIONS`` handler of the first build is kept: its ``Allow`` named one method (Litestar issue
4169, fixed in Litestar 3). `point_options_at_their_routes` points each such handler at the route
that serves the path now.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute

_AUTOMATIC = "options_handler"  # the name of Litestar's generated handler function


def point_options_at_their_routes(app: Litestar) -> None:
    """Rebind every generated ``OPTIONS`` handler to the route that serves its path now."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or "OPTIONS" not in route.route_handler_map:
            continue
        handler, _ = route.route_handler_map["OPTIONS"]
        fn = getattr(handler.fn, "__func__", handler.fn)
        if getattr(fn, "__name__", "") != _AUTOMATIC:
            continue
        for cell in fn.__closure__ or ():
            if isinstance(cell.cell_contents, HTTPRoute) and cell.cell_contents is not route:
                cell.cell_contents = route
