"""Query parameters with a range: checked by Litestar and described whole in the OpenAPI doc."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from litestar.params import QueryParameter

from impasto.services.errors import FieldError
from impasto.wire import bounds


def ranged(kind: Any) -> Any:
    """A ``QueryParameter`` holding ``kind``'s range. The bounds are also written into the
    document as given: Litestar 2 leaves out a bound of 0 (``keep_alive`` read as unbounded
    below, so schema-driven clients sent negative values)."""
    found = bounds(kind)
    return QueryParameter(**found, schema_extra={"minimum": found["ge"], "maximum": found["le"]})


def comma_list(choices: Sequence[str], **kwargs: Any) -> Any:
    """A ``QueryParameter`` taking a comma-separated list of ``choices``; the document gives
    the list as a pattern (``read_comma_list`` checks it, naming the field)."""
    one = "|".join(re.escape(choice) for choice in choices)
    pattern = f"^(?:(?:{one})(?:,(?:{one}))*)?$"
    description = f"Comma-separated: {', '.join(choices)}"
    return QueryParameter(description=description, schema_extra={"pattern": pattern}, **kwargs)


def read_comma_list(value: str | None, choices: Sequence[str], field: str) -> set[str]:
    """The set a ``comma_list`` parameter names (empty for none); a FieldError naming ``field``
    and the choices for anything else."""
    wanted = {item for item in (value or "").split(",") if item}
    if not wanted <= set(choices):
        raise FieldError(field, f"must be a comma-separated list of {', '.join(choices)}")
    return wanted
