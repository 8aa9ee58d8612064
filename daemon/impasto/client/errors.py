"""Errors a client user can meet; each message says what to do next."""

from __future__ import annotations

import msgspec


class ImpastoError(Exception):
    """Base of every error raised by impasto.client."""


class DaemonNotRunning(ImpastoError):
    """No daemon answers where the discovery file (or the caller) says it should be."""

    def __init__(self, reason: str = "") -> None:
        message = "Impasto is not running: start it with `impasto serve`"
        super().__init__(f"{message} ({reason})" if reason else message)
        self.reason = reason


class SettingsError(ImpastoError):
    """The settings that say where the daemon is (config.toml, IMPASTO_* variables) are
    unreadable; the message names the file or variable."""


class FieldError(msgspec.Struct, frozen=True):
    """One invalid request field and what is wrong with it."""

    field: str
    message: str


class ApiError(ImpastoError):
    """The daemon answered with an error status; ``errors`` names the invalid fields."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[FieldError] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.detail = detail
        self.errors = list(errors or [])
        self.retry_after = retry_after
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.detail} (HTTP {self.status})"
        for error in self.errors:
            line = f"{error.field}: {error.message}"
            if line not in self.detail:  # some details already spell the field errors out
                text += f"\n  {line}"
        return text


class UnsendableRequest(ImpastoError):
    """A request the client refused to send: a number JSON cannot carry (NaN, infinity), which
    an encoder would write as ``null`` and the daemon would read as "the default"."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors) + " (not sent)")


class StreamError(ImpastoError):
    """The event stream kept dropping without delivering anything."""
