"""The errors Cerana reports to its users.

Every error a client can see derives from `CeranaError`; the HTTP status and
the TheHive 3 error type travel on the class, so the API layer renders them
all with one handler::

    CeranaError                      400 BadRequest
    ├── InvalidInput                 400 BadRequest            (malformed body)
    │   ├── AttributeError_          400 AttributeCheckingError (field rules)
    │   └── InvalidQuery             400 SearchError            (query DSL)
    ├── AuthenticationFailed         401 AuthenticationError
    ├── Forbidden                    403 AuthorizationError
    ├── NotFound                     404 NotFoundError
    ├── Conflict                     400 ConflictError          (duplicate value)
    └── VersionConflict              409 ConflictError          (stale update)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


class CeranaError(Exception):
    """Base of every error whose message is safe to show to a client."""

    status: ClassVar[int] = 400
    error_type: ClassVar[str] = "BadRequest"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, Any]:
        """Returns the TheHive 3 error body: ``{"type", "message"}``."""
        return {"type": self.error_type, "message": self.message}


class InvalidInput(CeranaError):
    """The request body or a parameter is malformed."""


@dataclass(frozen=True)
class AttributeProblem:
    """One field that failed its rule, in TheHive's attribute-error shape."""

    kind: str  # InvalidFormatAttributeError | UnknownAttributeError | ...
    name: str
    message: str
    value: Any = None
    format: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.kind,
            "name": self.name,
            "message": self.message,
        }
        if self.kind == "InvalidFormatAttributeError":
            body["format"] = self.format
            body["value"] = clip_value(self.value)
        return body


def clip_value(raw: Any) -> Any:
    """Returns ``raw`` cut to about 200 characters when it is a long string, a
    long list or object (as text), so an error body stays small whatever was
    sent, and can be serialised even when the value was nested deeply."""
    if isinstance(raw, str) and len(raw) > 200:
        return raw[:200] + "..."
    if isinstance(raw, list | dict) and len(text := str(raw)) > 200:
        return text[:200] + "..."
    return raw


class AttributeCheckingError(InvalidInput):
    """One or more fields of an entity break their rules.

    The JSON body is TheHive's: ``{"tableName", "type", "message", "errors":
    [[problem, ...]]}``; ``message`` names every field so that a person reading
    only the message still learns what was wrong.
    """

    error_type = "AttributeCheckingError"

    def __init__(self, table: str, problems: list[AttributeProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.table = table
        self.problems = problems

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["tableName"] = self.table
        body["errors"] = [[p.to_json() for p in self.problems]]
        return body


def invalid_format(
    table: str, name: str, value: Any, fmt: str, why: str
) -> AttributeCheckingError:
    """Builds the error for one field whose value has the wrong format."""
    problem = AttributeProblem(
        kind="InvalidFormatAttributeError",
        name=name,
        message=f"Invalid value for {name}: {why}",
        value=value,
        format=fmt,
    )
    return AttributeCheckingError(table, [problem])


class InvalidQuery(InvalidInput):
    """A query DSL or stats body cannot be understood; the message says where."""

    error_type = "SearchError"


class AuthenticationFailed(CeranaError):
    status = 401
    error_type = "AuthenticationError"


class Forbidden(CeranaError):
    status = 403
    error_type = "AuthorizationError"


class NotFound(CeranaError):
    status = 404
    error_type = "NotFoundError"


class Conflict(CeranaError):
    """A unique value exists already (TheHive answers these with 400)."""

    error_type = "ConflictError"


class VersionConflict(CeranaError):
    """The entity changed since the client (or this request) read it."""

    status = 409
    error_type = "ConflictError"
