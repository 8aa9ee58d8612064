"""Errors services raise; the API maps each to one HTTP status."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from impasto.engine.types import InvalidRequestError

# Re-exported: the API answers a full disk under the database with 507, like DiskFullError.
from impasto.store.db import StorageFullError


class ServiceError(Exception):
    """Base class: ``str(exc)`` is a message a user can act on."""


class NotFoundError(ServiceError):
    """The id names nothing (404)."""


class ConflictError(ServiceError):
    """The thing exists but is in the wrong state for this (409)."""


class QueueFullError(ServiceError):
    """The queue is at its limit (429); ``retry_after`` is a hint in seconds."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FieldError(ServiceError):
    """A request field is invalid (422); ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DiskFullError(ServiceError):
    """The disk is full, so nothing can be recorded (507)."""


def is_disk_full(exc: BaseException) -> bool:
    """True for a full disk: under the database, or a file write that got ENOSPC."""
    if isinstance(exc, StorageFullError | DiskFullError):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


__all__ = [
    "ConflictError",
    "DiskFullError",
    "FieldError",
    "NotFoundError",
    "QueueFullError",
    "ServiceError",
    "StorageFullError",
    "is_disk_full",
]


@contextlib.contextmanager
def engine_rules() -> Iterator[None]:
    """An engine check's InvalidRequestError inside the block as the FieldError (a 422 naming
    its field) the services raise: the services check a plan by the engine's own rules."""
    try:
        yield
    except InvalidRequestError as exc:
        raise FieldError(exc.field, exc.message) from None
