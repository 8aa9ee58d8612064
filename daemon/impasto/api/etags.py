"""RFC 9110's ``If-None-Match``, read the same way by every route that answers 304."""

from __future__ import annotations

import re

# An entity tag, weak or strong: W/"..." or "..." (no quote inside, commas allowed).
ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')


def none_match(header: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` value matches the representation's ``etag``: ``*``, or a
    list of entity tags compared weakly (RFC 9110, 13.1.2: ``W/"x"`` matches ``"x"``). A GET
    or HEAD whose header matches is answered 304."""
    if header.strip() == "*":
        return True
    return _opaque(etag) in {_opaque(tag) for tag in ENTITY_TAG.findall(header)}


def _opaque(tag: str) -> str:
    """The tag without its weakness marker."""
    return tag.strip().removeprefix("W/")
