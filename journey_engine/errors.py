"""The exception tree. Domain code raises these; one middleware turns them into HTTP answers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: which field, why, and (in a batch) which item."""

    field: str
    reason: str
    index: int | None = None

    def __str__(self) -> str:
        where = self.field if self.index is None else f"[{self.index}].{self.field}"
        return f"{where}: {self.reason}"

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"field": self.field, "reason": self.reason}
        if self.index is not None:
            out["index"] = self.index
        return out


class JourneyError(Exception):
    """Root of every error the engine raises on purpose. `status` is the HTTP status it maps to."""

    status = 500
    default_message = "Internal server error"

    def __init__(self, message: str | None = None, problems: list[Problem] | None = None) -> None:
        self.message = message or self.default_message
        self.problems = problems or []
        super().__init__(self.message)


class SettingsError(JourneyError):
    """A setting is missing or invalid; the engine does not start."""


class BadRequest(JourneyError):
    status = 400
    default_message = "Bad request"


class Unauthorized(JourneyError):
    status = 401
    default_message = "Missing or invalid API key"


class Forbidden(JourneyError):
    status = 403
    default_message = "The API key lacks the scope this request needs"


class NotFound(JourneyError):
    status = 404
    default_message = "Not found"


class Conflict(JourneyError):
    status = 409
    default_message = "Conflict"


class PayloadTooLarge(JourneyError):
    status = 413
    default_message = "Request body too large"


class UnsupportedMediaType(JourneyError):
    status = 415
    default_message = "Unsupported content type"


class Overloaded(JourneyError):
    status = 503
    default_message = "The engine is overloaded; retry later"

    def __init__(self, message: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after
