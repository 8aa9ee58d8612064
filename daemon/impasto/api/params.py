"""Query parameters with a range: checked by Litestar and described whole in the OpenAPI doc."""

from __future__ import annotations

from typing import Any

from litestar.params import QueryParameter

from impasto.wire import bounds


def ranged(kind: Any) -> Any:
    """A ``QueryParameter`` holding ``kind``'s range. The bounds are also written into the
    document as given: Litestar 2 leaves out a bound of 0 (``keep_alive`` read as unbounded
    below, so schema-driven clients sent negative values)."""
    found = bounds(kind)
    return QueryParameter(**found, schema_extra={"minimum": found["ge"], "maximum": found["le"]})
