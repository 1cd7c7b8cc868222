"""RFC 9457 problem details: the one shape of every error the tenant API answers."""

from __future__ import annotations

import json
from http import HTTPStatus

from django.http import HttpResponse

CONTENT_TYPE = "application/problem+json"
# A tag URI (RFC 4151): a stable identifier per code that names no server to look it up on;
# the codes are documented in docs/api.md.
TYPE_PREFIX = "tag:thepia.net,2026:flows-api/problems/"

# Codes for failures that are not domain errors, by HTTP status (docs/api.md has the table).
STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "insufficient_scope",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
}
UNAUTHORIZED_DETAIL = "A valid API key is required: Authorization: Bearer flk_…"


def problem(status: int, code: str | None = None, detail: str = "", **extra) -> HttpResponse:
    code = code or STATUS_CODES.get(status, "error")
    body = {
        "type": TYPE_PREFIX + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or HTTPStatus(status).description,
        "code": code,
        **extra,
    }
    return HttpResponse(json.dumps(body, ensure_ascii=False), status=status, content_type=CONTENT_TYPE)


def unauthorized() -> HttpResponse:
    """Byte for byte the same whatever was wrong with the key: missing, malformed, unknown, revoked, expired."""
    response = problem(401, "unauthorized", UNAUTHORIZED_DETAIL)
    response["WWW-Authenticate"] = 'Bearer realm="flows"'
    return response


def is_problem(response) -> bool:
    return response.get("Content-Type", "").startswith(CONTENT_TYPE)
