"""Query parameters: ranges checked by Litestar and described whole in the OpenAPI doc, lists
taken comma-separated or repeated, and every other parameter given at most once."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from litestar import Litestar, Request
from litestar.params import QueryParameter
from litestar.routes import HTTPRoute

from impasto.api.bodies import KNOWN_FIELDS_ONLY
from impasto.services.errors import FieldError
from impasto.wire import bounds


def ranged(kind: Any) -> Any:
    """A ``QueryParameter`` holding ``kind``'s range. The bounds are also written into the
    document as given: Litestar 2 leaves out a bound of 0 (``keep_alive`` read as unbounded
    below, so schema-driven clients sent negative values)."""
    found = bounds(kind)
    return QueryParameter(**found, schema_extra={"minimum": found["ge"], "maximum": found["le"]})


def comma_list(choices: Sequence[str], **kwargs: Any) -> Any:
    """A ``QueryParameter`` (on a ``list[str] | None``) taking ``choices`` comma-separated
    (``status=a,b``), repeated (``status=a&status=b``: how requests and axios send a list) or
    both; the document gives each value's form as a pattern (``read_comma_list`` checks it,
    naming the field)."""
    one = "|".join(re.escape(choice) for choice in choices)
    pattern = f"^(?:(?:{one})(?:,(?:{one}))*)?$"
    description = (
        f"Any of {', '.join(choices)}: comma-separated, or the parameter repeated (or both)"
    )
    items = {"type": "string", "pattern": pattern}
    schema = {"oneOf": [{"type": "array", "items": items}, {"type": "null"}]}
    return QueryParameter(description=description, schema_extra=schema, **kwargs)


def read_comma_list(values: Sequence[str] | None, choices: Sequence[str], field: str) -> set[str]:
    """The set a ``comma_list`` parameter names, over all its values (empty for none); a
    FieldError naming ``field`` and the choices for anything else."""
    wanted = {item for value in values or () for item in value.split(",") if item}
    if not wanted <= set(choices):
        unknown = ", ".join(sorted(wanted - set(choices)))
        raise FieldError(
            field,
            f"takes {', '.join(choices)} (comma-separated, or the parameter repeated), "
            f"not {unknown}",
        )
    return wanted


SINGLE_VALUED = "single_valued_query"  # route handler opt: its query parameters that take one


def note_single_valued_params(app: Litestar) -> None:
    """Record on each route handler of Impasto's own API the query parameters that take one
    value (all but those declared as lists), for :func:`one_value_each`. The compatible APIs
    keep the last value, as AUTOMATIC1111 (FastAPI) does."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler, kwargs_model in route.route_handler_map.values():
            if not handler.opt.get(KNOWN_FIELDS_ONLY):
                continue
            handler.opt[SINGLE_VALUED] = frozenset(
                p.field_alias for p in kwargs_model.expected_query_params if not p.is_sequence
            )


def one_value_each(request: Request[Any, Any, Any]) -> None:
    """A query parameter that takes one value, sent more than once, is a FieldError naming it:
    Litestar would keep the last value without a word (``limit=5&limit=10``)."""
    handler = request.scope.get("route_handler")
    names = handler.opt.get(SINGLE_VALUED) if handler is not None else None
    if not names or not request.scope.get("query_string"):
        return
    for name in sorted(names):
        count = len(request.query_params.getall(name, []))
        if count > 1:
            raise FieldError(name, f"was given {count} times; this parameter takes one value")
