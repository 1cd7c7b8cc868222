"""API key authentication, rate limit and usage count: one call of the `api_authenticate` definer function,
run by `clients.tenancy.tenant_context.from_definer` (see `api.api`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from ninja.security.http import HttpAuthBase

from clients import apikeys
from config.errors import Forbidden

_AUTHENTICATE_SQL = "SELECT * FROM api_authenticate(%s, %s, %s, %s)"
RATE_POLICY = "per-key"


@dataclass(frozen=True)
class RateState:
    """The key's one-minute window after counting this request."""

    limit: int
    used: int
    reset: int  # seconds until the window ends

    @property
    def exceeded(self) -> bool:
        return self.used > self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def headers(self) -> dict[str, str]:
        """IETF httpapi ratelimit-headers (draft-ietf-httpapi-ratelimit-headers): policy and current state."""
        return {
            "RateLimit-Policy": f'"{RATE_POLICY}";q={self.limit};w=60',
            "RateLimit": f'"{RATE_POLICY}";r={self.remaining};t={self.reset}',
        }


@dataclass(frozen=True)
class ApiPrincipal:
    """Who calls: an API key of one client, optionally bound to one of its applications."""

    client_id: uuid.UUID
    application_id: uuid.UUID | None
    scopes: frozenset[str]
    key_id: uuid.UUID
    prefix: str
    rate: RateState
    usage_day: date  # the day the function counted this request on (as 2xx, or 4xx when rate-limited)

    @property
    def audit_principal(self) -> tuple[str, str, str]:
        return "api_key", str(self.key_id), self.prefix


def definer_call(authorization: str, endpoint: str) -> tuple[str, list] | None:
    """The `api_authenticate` call for an `Authorization: Bearer flk_…` header value, or None when
    the value is no well-formed key (then no call: the answer is the same 401 as for a bad key).

    A well-formed key always costs one call of the definer function, found or not: which of
    unknown, wrong secret, revoked, expired or inactive client it was is never told apart here.
    A good key's request is counted there too, on `endpoint` (see `api.metering`). The caller runs
    it with `tenant_context.from_definer`, which enters the tenant context of the key's client.
    """
    scheme, _, credentials = (authorization or "").partition(" ")
    parsed = apikeys.parse(credentials.strip()) if scheme.lower() == "bearer" else None
    if parsed is None:
        return None
    prefix, secret = parsed
    return _AUTHENTICATE_SQL, [prefix, apikeys.hash_secret(secret), settings.FLOWS_API_RATE_LIMIT_PER_MINUTE, endpoint]


def principal(row: tuple | None) -> ApiPrincipal | None:
    """The principal of the definer function's answer (None: no usable key)."""
    if row is None:
        return None
    client_id, application_id, scopes, key_id, key_prefix, limit, used, reset, day = row
    rate = RateState(limit, used, reset)
    return ApiPrincipal(client_id, application_id, frozenset(scopes), key_id, key_prefix, rate, day)


class InsufficientScope(Forbidden):
    code = "insufficient_scope"


class ApiKeyAuth(HttpAuthBase):
    """The bearer scheme of one scope, for ninja and the OpenAPI document.

    The key itself was checked once, before the tenant transaction opened (`api.api._tenant_run`);
    this reads the result and checks the scope, before the request body is even validated.
    """

    openapi_scheme = "bearer"
    openapi_bearerFormat = "flk_<prefix>_<secret>"  # the OpenAPI field's own name

    def __init__(self, scope: str):
        super().__init__()
        self.scope = scope

    def __call__(self, request):
        # Not ninja's HttpBearer: it logs the header value in DEBUG, and the header is the key.
        principal = getattr(request, "api_principal", None)
        if principal is None:
            return None
        if self.scope not in principal.scopes:
            raise InsufficientScope(f"This API key lacks the scope {self.scope}.")
        return principal
