"""`single_run(name)`: a lock that keeps two runs of a scheduled job apart, held by a row nobody else can reach.

The job commits batch by batch (resumable after a kill), so the lock must outlive each
transaction: it is a row lock held by a transaction on a dedicated connection of the console
role, open for the whole run. If the process dies, the server ends that connection and the lock
is gone; nothing stale is left for an operator to clear.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.conf import settings
from django.db import connections

from clients.models import JobLock

_TABLE = JobLock._meta.db_table


def _connect() -> psycopg.Connection:
    params = connections[settings.CONSOLE_DB_ALIAS].get_connection_params()
    for django_only in ("cursor_factory", "context", "server_side_binding"):
        params.pop(django_only, None)
    return psycopg.connect(**params, autocommit=True)


@contextmanager
def single_run(name: str) -> Iterator[bool]:
    """Yields True while this run holds the job's lock, False (at once, without waiting) when another run does."""
    with _connect() as connection:
        # A long run must not lose its lock to a server-side idle-in-transaction timeout.
        connection.execute("SET idle_in_transaction_session_timeout = 0")
        connection.execute(f"INSERT INTO {_TABLE} (name) VALUES (%s) ON CONFLICT DO NOTHING", [name])  # noqa: S608
        with connection.transaction():
            held = connection.execute(
                f"SELECT name FROM {_TABLE} WHERE name = %s FOR UPDATE SKIP LOCKED",  # noqa: S608
                [name],
            ).fetchone()
            yield held is not None
