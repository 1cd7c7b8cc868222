"""Tenant context: which client the running code acts for, and the guard on the `tenant` database alias.

The rules (DESIGN §4), all enforced here and nowhere else:

* `tenant_context(client)` sets a context variable and opens the outermost transaction on the
  `tenant` alias; its first statement is `set_config('app.client_id', <id>, true)` —
  transaction-local, so nothing survives the transaction on a pooled or persistent connection.
* The `tenant` alias refuses any statement outside a tenant context, outside a transaction, or
  in a transaction bound to another tenant (`guard_tenant_statement`, an execute wrapper).
* Switching tenant inside an open transaction is an error: a rolled-back savepoint would silently
  restore the previous tenant.
* Any IntegrityError raised inside a tenant context becomes one generic error, so a constraint
  that sees other clients' rows cannot reveal them.

The explicit escape hatch for cross-tenant (staff) work is the `console` alias: outside a tenant
context the router sends everything there; inside one, `.using(settings.CONSOLE_DB_ALIAS)` says so.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import IntegrityError, connections, transaction

from config.errors import InvalidInput, TenancyError

_current_client_id: ContextVar[uuid.UUID | None] = ContextVar("flows_client_id", default=None)

SETTING = "app.client_id"
_SET_TENANT_SQL = "SELECT set_config('app.client_id', %s, true)"
# Transaction bookkeeping returns no rows; Django issues it on the tenant alias around test cases.
_TRANSACTION_CONTROL = re.compile(
    r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT|SET CONSTRAINTS ALL (IMMEDIATE|DEFERRED))\b", re.IGNORECASE
)
GENERIC_WRITE_ERROR = "The request could not be applied: it conflicts with existing data or is invalid."


def current_client_id() -> uuid.UUID | None:
    """The client the running code acts for, or None outside a tenant context."""
    return _current_client_id.get()


def in_tenant_context() -> bool:
    return _current_client_id.get() is not None


def _client_id(client) -> uuid.UUID:
    if isinstance(client, uuid.UUID):
        return client
    client_id = getattr(client, "pk", None)
    if not isinstance(client_id, uuid.UUID):
        raise TenancyError(f"tenant_context() needs a saved Client or its UUID, not {client!r}")
    return client_id


def _transaction_open(connection) -> bool:
    """An atomic block is open on the connection, other than the ones a Django TestCase wraps tests in."""
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


@contextmanager
def tenant_context(client) -> Iterator[uuid.UUID]:
    """Run the block as `client` on the restricted `tenant` alias, in one transaction.

    Re-entering for the same client nests (a savepoint); entering for another client while one
    is active raises TenancyError.
    """
    client_id = _client_id(client)
    alias = settings.TENANT_DB_ALIAS
    active = _current_client_id.get()
    if active is not None:
        if active != client_id:
            raise TenancyError("Cannot switch tenant inside an open tenant transaction.")
        with transaction.atomic(using=alias):
            yield client_id
        return

    connection = connections[alias]
    if _transaction_open(connection):
        raise TenancyError("tenant_context() must open the transaction on the tenant alias; one is already open.")
    token = _current_client_id.set(client_id)
    try:
        with _uniform_integrity_errors(), transaction.atomic(using=alias):
            connection.flows_client_id = client_id
            try:
                _set_tenant(connection, client_id)
                yield client_id
            finally:
                connection.flows_client_id = None
    finally:
        _current_client_id.reset(token)


def _set_tenant(connection, client_id: uuid.UUID) -> None:
    """The transaction's first statement. Sent straight to the driver: it is this module's own
    statement, so Django's cursor wrappers (the guard among them) have nothing to add, and the
    per-transaction cost of tenancy stays one round trip (see docs/performance.md)."""
    with connection.wrap_database_errors:
        connection.connection.execute(_SET_TENANT_SQL, [str(client_id)])


@contextmanager
def _uniform_integrity_errors() -> Iterator[None]:
    try:
        yield
    except IntegrityError:
        # Deliberately one message whatever the constraint: a unique or foreign-key check sees
        # rows of other clients that RLS hides, and its message would name them.
        raise InvalidInput(GENERIC_WRITE_ERROR, code="invalid_request") from None


def guard_tenant_statement(execute, sql, params, many, context):
    """Execute wrapper installed on the tenant alias by `config.postgres`: fail loud, not only closed."""
    if not _TRANSACTION_CONTROL.match(sql):
        client_id = _current_client_id.get()
        connection = context["connection"]
        if client_id is None:
            raise TenancyError("Query on the tenant database outside tenant_context().")
        if not connection.in_atomic_block:
            raise TenancyError("Query on the tenant database outside a transaction.")
        if getattr(connection, "flows_client_id", None) != client_id:
            raise TenancyError("The tenant connection's transaction is not bound to the current tenant.")
    return execute(sql, params, many, context)


def reset_pooled_connection(connection) -> None:
    """psycopg_pool `reset` callback: clear any session-level tenant before the pool reuses a connection."""
    with connection.transaction():
        connection.execute(f"RESET {SETTING}")


def assert_connection_clean(connection) -> None:
    """Checkout hook for the tenant alias: a connection handed to Django must carry no tenant."""
    value = connection.execute("SELECT current_setting('app.client_id', true)").fetchone()[0]
    if not connection.autocommit:
        connection.rollback()
    if value:
        connection.close()
        raise TenancyError("A tenant database connection arrived carrying a tenant; it was closed.")
