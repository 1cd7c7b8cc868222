"""Usage metering: one counter per client, application, key, endpoint, status class and day.

The definer call that authenticates a request also counts it (`api_authenticate`,
api/migrations/0004): as `2xx`, or as `4xx` (and `rate_limited`) when the rate limit refuses it. A successful request
therefore writes nothing in its own tenant transaction. A request that ends in an error moves its
one count from `2xx` to its class here, in one statement — exact under concurrency, since both
halves are relative updates. A counter row may therefore hold 0 (every request of that day, key
and endpoint failed); readers sum counts and never count rows.
"""

from __future__ import annotations

from django.db import connections, router

from api.auth import ApiPrincipal
from api.models import Usage

# Runs inside the request's tenant transaction, so RLS's USING and WITH CHECK hold both halves to
# the caller's client. The provisional row exists: the definer call committed it before.
_RECLASSIFY = f"""
WITH provisional AS (
    UPDATE {Usage._meta.db_table} SET count = count - 1
     WHERE client_id = %(client)s AND day = %(day)s AND api_key_id = %(key)s AND endpoint = %(endpoint)s
       AND application_id IS NOT DISTINCT FROM %(application)s AND status_class = '2xx'
)
INSERT INTO {Usage._meta.db_table} AS u (client_id, day, api_key_id, application_id, endpoint, status_class, count)
VALUES (%(client)s, %(day)s, %(key)s, %(application)s, %(endpoint)s, %(class)s, 1)
ON CONFLICT ON CONSTRAINT api_usage_counter DO UPDATE SET count = u.count + 1
"""  # noqa: S608 - table name from the model, values are parameters


def status_class(status: int) -> str:
    """2xx, 4xx or 5xx: the API answers nothing else (no redirects)."""
    return "5xx" if status >= 500 else "4xx" if status >= 400 else "2xx"


def reclassify(*, actor: ApiPrincipal, endpoint: str, status: int) -> None:
    """Move the request's count, made as 2xx by the definer call, to the class of `status`, inside the
    current tenant transaction. Nothing to do for a success, nor for a 429 (counted as 4xx there).

    Not a service with an audit event: an event per request would lock the client's audit chain
    head on every call and serialise all of a client's requests; the writes a request makes are
    audited by the services it calls.
    """
    target = status_class(status)
    if target == "2xx" or actor.rate.exceeded:
        return
    with connections[router.db_for_write(Usage)].cursor() as cursor:
        cursor.execute(
            _RECLASSIFY,
            {
                "client": actor.client_id,
                "day": actor.usage_day,
                "key": actor.key_id,
                "application": actor.application_id,
                "endpoint": endpoint[:64],
                "class": target,
            },
        )
