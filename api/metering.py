"""Usage metering: one counter per client, application, key, endpoint, status class and day."""

from __future__ import annotations

from http import HTTPStatus

from django.db import connections, router

from api.auth import ApiPrincipal
from api.models import Usage

# One statement, concurrency-safe: the counter row is created or incremented atomically, and the
# unique constraint is the conflict target. It runs inside the request's tenant transaction, so
# RLS's WITH CHECK holds it to the caller's client. The day is UTC.
_COUNT = f"""
INSERT INTO {Usage._meta.db_table} AS u
    (client_id, day, api_key_id, application_id, endpoint, status_class, count, rate_limited)
VALUES (%s, (now() AT TIME ZONE 'UTC')::date, %s, %s, %s, %s, 1, %s)
ON CONFLICT ON CONSTRAINT api_usage_counter
DO UPDATE SET count = u.count + 1, rate_limited = u.rate_limited + EXCLUDED.rate_limited
"""  # noqa: S608 - table name from the model, values are parameters


def status_class(status: int) -> str:
    """2xx, 4xx or 5xx: the API answers nothing else (no redirects)."""
    return "5xx" if status >= 500 else "4xx" if status >= 400 else "2xx"


def record_usage(*, actor: ApiPrincipal, endpoint: str, status: int) -> None:
    """Count one request of `actor` to `endpoint` answered with `status`, inside the current tenant transaction.

    Not a service with an audit event: an event per request would lock the client's audit chain
    head on every call and serialise all of a client's requests; the writes a request makes are
    audited by the services it calls.
    """
    with connections[router.db_for_write(Usage)].cursor() as cursor:
        cursor.execute(
            _COUNT,
            [
                actor.client_id,
                actor.key_id,
                actor.application_id,
                endpoint[:64],
                status_class(status),
                int(status == HTTPStatus.TOO_MANY_REQUESTS),
            ],
        )
