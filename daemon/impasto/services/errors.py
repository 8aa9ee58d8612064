"""Errors services raise; the API maps each to one HTTP status."""

from __future__ import annotations


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
