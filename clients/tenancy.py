"""Tenant context: which client the running code acts for, and the guard on the `tenant` database alias.

The rules (DESIGN §4), all enforced here and nowhere else:

* `tenant_context(client)` sets a context variable and opens the outermost transaction on the
  `tenant` alias; its first statement is `set_config('app.client_id', <id>, true)` —
  transaction-local, so nothing survives the transaction on a pooled or persistent connection.
* The `tenant` alias refuses any statement outside a tenant context, outside a transaction, or
  in a transaction bound to another tenant (`guard_tenant_statement`, an execute wrapper; the
  driver's `copy()` and `stream()` go through the same check). Outside a context only single
  transaction-control statements pass, matched whole, so nothing can ride along with them.
* A context belongs to the block that entered it: code running after that block was suspended
  (a generator that yielded from inside it) or in another thread has no tenant, and fails loud.
* A connection kept between requests (persistent or pooled) is reset before it is used again.
* Switching tenant inside an open transaction is an error: a rolled-back savepoint would silently
  restore the previous tenant.
* Any IntegrityError raised inside a tenant context becomes one generic error, so a constraint
  that sees other clients' rows cannot reveal them.
* The tenant API learns its client from a SECURITY DEFINER function (`api_authenticate`):
  `tenant_context.from_definer(sql, params)` is the same context, entered for the client the
  function's first column names. The function runs and commits in its own transaction, before
  the tenant transaction opens: `BEGIN`, the call, `COMMIT`, `BEGIN` go to the server as one
  message (one round trip), then `set_config` is the tenant transaction's first statement as always.

The explicit escape hatch for cross-tenant (staff) work is the `console` alias: outside a tenant
context the router sends everything there; inside one, `.using(settings.CONSOLE_DB_ALIAS)` says so.
"""

from __future__ import annotations

import contextlib
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType

from django.conf import settings
from django.db import IntegrityError, connections, transaction

from config.errors import InvalidInput, TenancyError

# The active tenant and the frame of the block that entered it.
_active: ContextVar[tuple[uuid.UUID, FrameType] | None] = ContextVar("flows_tenant", default=None)

SETTING = "app.client_id"
_SET_TENANT_SQL = "SELECT set_config('app.client_id', %s, true)"
# Back to the session's default (empty: no rows). Never a session-level set_config anywhere.
_CLEAR_TENANT_SQL = f"RESET {SETTING}"
# Transaction bookkeeping returns no rows; Django issues it on the tenant alias around atomic
# blocks and test cases. Matched as the whole statement: a second statement after it is refused.
_TRANSACTION_CONTROL = re.compile(
    r'\s*(?:(?:SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT) "?[A-Za-z0-9_]{1,63}"?'
    r"|SET CONSTRAINTS ALL (?:IMMEDIATE|DEFERRED))\s*;?\s*",
    re.IGNORECASE,
)
_CONTEXTLIB = contextlib.__file__
GENERIC_WRITE_ERROR = "The request could not be applied: it conflicts with existing data or is invalid."


def _on_stack(frame: FrameType) -> bool:
    current = sys._getframe(2)
    while current is not None:
        if current is frame:
            return True
        current = current.f_back
    return False


def current_client_id() -> uuid.UUID | None:
    """The client the running code acts for, or None outside a tenant context.

    Raises TenancyError when the context outlived its block: the block's frame is no longer
    running (a generator suspended inside `tenant_context` handed it to its caller).
    """
    active = _active.get()
    if active is None:
        return None
    client_id, frame = active
    if not _on_stack(frame):
        raise TenancyError(
            "A tenant context leaked out of its block (a generator suspended inside tenant_context()?); "
            "enter tenant_context() in the code that runs the queries."
        )
    return client_id


def in_tenant_context() -> bool:
    return current_client_id() is not None


def _block_frame() -> FrameType:
    """The frame whose `with` statement entered the context, seen through contextlib's helpers.

    `with tenant_context(c):` in f → f. Inside a `@contextmanager` function that wraps it, the
    block is the wrapper's caller's (whose `with` body runs while the wrapper is suspended), and
    through `ExitStack.enter_context` it is the stack's user.
    """
    frame = sys._getframe(2)
    while True:
        while frame.f_code.co_filename == _CONTEXTLIB:
            frame = frame.f_back
        caller = frame.f_back
        if caller is not None and caller.f_code.co_filename == _CONTEXTLIB and caller.f_code.co_name == "__enter__":
            frame = caller
            continue
        return frame


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


class tenant_context:
    """Run the block as `client` on the restricted `tenant` alias, in one transaction.

    Re-entering for the same client nests (a savepoint); entering for another client while one
    is active raises TenancyError. The context is the block's own: a thread started inside it,
    or a caller resumed after a generator yielded from inside it, has no tenant.
    """

    def __init__(self, client):
        self.client_id = _client_id(client)

    def __enter__(self) -> uuid.UUID:
        alias = settings.TENANT_DB_ALIAS
        self._stack = contextlib.ExitStack()
        active = current_client_id()
        if active is not None:
            if active != self.client_id:
                raise TenancyError("Cannot switch tenant inside an open tenant transaction.")
            self._stack.enter_context(transaction.atomic(using=alias))
            return self.client_id
        connection = connections[alias]
        if _transaction_open(connection):
            raise TenancyError("tenant_context() must open the transaction on the tenant alias; one is already open.")
        token = _active.set((self.client_id, _block_frame()))
        self._stack.callback(_active.reset, token)
        try:
            self._stack.enter_context(_uniform_integrity_errors())
            self._stack.enter_context(transaction.atomic(using=alias))
            connection.flows_client_id = self.client_id
            self._stack.callback(setattr, connection, "flows_client_id", None)
            _set_tenant(connection, self.client_id)
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        return self.client_id

    def __exit__(self, *exc_info) -> bool:
        return self._stack.__exit__(*exc_info)

    @classmethod
    def from_definer(cls, sql: str, params: list) -> _DefinerTenantContext:
        """`with tenant_context.from_definer(sql, params) as row:` — call a definer function of
        `dbroles.APP_FUNCTIONS` and run the block as the client its first column names.

        `row` is the function's first row; None (no row: an unknown, wrong or unusable key) runs the
        block with no tenant at all, so any query in it fails loud. The function's writes are
        committed before the tenant transaction begins (its row locks are not held through the
        block); on a connection already in a transaction (a test case's) it runs in that one.
        """
        return _DefinerTenantContext(sql, params)


class _DefinerTenantContext(tenant_context):
    """`tenant_context.from_definer`: the client is known only once the function answered."""

    def __init__(self, sql: str, params: list):
        self.sql, self.params = sql, params
        self.client_id = None
        self._stack = contextlib.ExitStack()
        self._tenant = contextlib.ExitStack()

    def __enter__(self) -> tuple | None:
        alias = settings.TENANT_DB_ALIAS
        if current_client_id() is not None:
            raise TenancyError("Call the definer function before entering a tenant context, not inside one.")
        connection = connections[alias]
        if _transaction_open(connection):
            raise TenancyError("tenant_context() must open the transaction on the tenant alias; one is already open.")
        frame = _block_frame()
        try:
            self._stack.enter_context(_uniform_integrity_errors())
            if connection.in_atomic_block:
                # A test case's transaction: the call runs inside it (it cannot be committed apart).
                row = call_definer_function(self.sql, self.params)
                if row is not None:
                    self._stack.enter_context(transaction.atomic(using=alias))
            else:
                self._stack.enter_context(transaction.atomic(using=alias))
                row = _definer_then_begin(connection, self.sql, self.params)
                if row is None:
                    # Nothing ran in the tenant transaction: end it, and run the block with no tenant.
                    transaction.set_rollback(True, using=alias)
            if row is None:
                self._stack.close()
                return None
            self.client_id = _client_id(row[0])
            self._tenant.callback(_active.reset, _active.set((self.client_id, frame)))
            connection.flows_client_id = self.client_id
            self._stack.callback(setattr, connection, "flows_client_id", None)
            _set_tenant(connection, self.client_id)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return row

    def __exit__(self, *exc_info) -> bool:
        # The tenant stays active until the transaction has ended, as in tenant_context.
        try:
            return self._stack.__exit__(*exc_info)
        finally:
            self._tenant.close()


def _definer_then_begin(connection, sql: str, params: list) -> tuple | None:
    """One round trip, one simple-protocol message: `BEGIN`, the definer call, `COMMIT` (its writes
    and row locks end here), `BEGIN` (the tenant transaction, which atomic() goes on to commit or
    roll back). Sent straight to the driver, past the guard, like `call_definer_function`, with the
    parameters bound client-side (Django's cursor class, psycopg's ClientCursor: the simple protocol
    takes several statements in one message). Returns the function's first row.

    The driver is put in autocommit for the message so that it adds no `BEGIN` of its own, and
    left so: the message leaves the tenant transaction open, and the driver's commit() and
    rollback() — what atomic() calls at the end — end an open transaction in either mode; atomic()
    then restores autocommit as always.
    """
    if ";" in sql:
        raise TenancyError("from_definer() takes one statement, the definer call.")
    driver = connection.connection
    with connection.wrap_database_errors:
        driver.autocommit = True  # atomic() has just turned it off; no transaction is open yet
        with driver.cursor() as cursor:
            cursor.execute(f"BEGIN; {sql}; COMMIT; BEGIN", params)
            cursor.nextset()  # past BEGIN's answer, to the call's
            return cursor.fetchone()


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


def call_definer_function(sql: str, params: list) -> tuple | None:
    """The one kind of statement the tenant alias runs outside a tenant context: a SECURITY DEFINER
    function declared in `dbroles.APP_FUNCTIONS` (API key authentication, before the tenant is
    known). Sent straight to the driver, past the guard, in its own transaction unless one is open;
    returns the first row."""
    connection = connections[settings.TENANT_DB_ALIAS]
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection.connection.execute(sql, params).fetchone()


def check_tenant_statement(connection, sql) -> None:
    """Refuse a statement on the tenant alias that does not run inside the current tenant's transaction."""
    if isinstance(sql, str) and _TRANSACTION_CONTROL.fullmatch(sql):
        return
    client_id = current_client_id()
    if client_id is None:
        raise TenancyError("Query on the tenant database outside tenant_context().")
    if not connection.in_atomic_block:
        raise TenancyError("Query on the tenant database outside a transaction.")
    if getattr(connection, "flows_client_id", None) != client_id:
        raise TenancyError("The tenant connection's transaction is not bound to the current tenant.")


def guard_tenant_statement(execute, sql, params, many, context):
    """Execute wrapper installed on the tenant alias by `config.postgres`: fail loud, not only closed."""
    check_tenant_statement(context["connection"], sql)
    return execute(sql, params, many, context)


def reset_connection(connection) -> None:
    """Clear any session-level tenant before a kept connection is used again: the psycopg pool's
    `reset` callback, and what `config.postgres` runs on a persistent connection between requests."""
    if connection.autocommit:
        connection.execute(_CLEAR_TENANT_SQL)
    else:
        with connection.transaction():
            connection.execute(_CLEAR_TENANT_SQL)


def assert_connection_clean(connection) -> None:
    """Checkout hook for the tenant alias: a connection handed to Django must carry no tenant."""
    value = connection.execute("SELECT current_setting('app.client_id', true)").fetchone()[0]
    if not connection.autocommit:
        connection.rollback()
    if value:
        connection.close()
        raise TenancyError("A tenant database connection arrived carrying a tenant; it was closed.")
