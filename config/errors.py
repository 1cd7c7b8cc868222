"""The domain error hierarchy: services raise these; each door (admin, command, API) maps them in one place."""

from __future__ import annotations


def excerpt(value: object, limit: int = 60) -> str:
    """`value` for a message that echoes input: at most `limit` characters of it, never pages."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


class FlowsError(Exception):
    """A refused or invalid operation, with a stable machine-readable `code` and a message for people."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}

    def as_dict(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


class InvalidInput(FlowsError):
    code = "invalid"
    http_status = 400


class NotFound(FlowsError):
    code = "not_found"
    http_status = 404


class Conflict(FlowsError):
    code = "conflict"
    http_status = 409


class Forbidden(FlowsError):
    """The actor lacks the permission the operation needs."""

    code = "permission_denied"
    http_status = 403


class Refused(FlowsError):
    """Valid input that the current state does not allow (a downgrade that does not fit, a quota)."""

    code = "refused"
    http_status = 409


class TenancyError(RuntimeError):
    """Misuse of the tenancy machinery: a programming error, never shown to users as a domain error."""
