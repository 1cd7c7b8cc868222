"""The database router: `tenant` inside a tenant context, `console` otherwise; migrations only on `default`.

And the read replica (docs/scaling.md): `read_alias()` names where a staff-side read that may
lag the primary by a moment goes — audit browsing, exports, dashboards, analytics — and nothing
else reads there. After any write in the same request (or command, or thread), and inside an
open transaction on the console alias, it answers the primary, so a page never misses what the
same request has just written (the replica may be seconds behind).
"""

from contextvars import ContextVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from clients.tenancy import in_tenant_context
from config.errors import TenancyError

REPLICA_ALIAS = "replica"
# True once this request (or command, or thread) has written: its reads stay on the primary.
_primary_pinned: ContextVar[bool] = ContextVar("flows_primary_pinned", default=False)


def read_alias() -> str:
    """Where a lag-tolerant staff read goes: the replica when one is configured, else the console.

    The primary (console) after a write in this request, or while a console transaction is open.
    """
    if REPLICA_ALIAS not in settings.DATABASES or _primary_pinned.get():
        return settings.CONSOLE_DB_ALIAS
    if connections[settings.CONSOLE_DB_ALIAS].in_atomic_block:
        return settings.CONSOLE_DB_ALIAS
    return REPLICA_ALIAS


def pin_primary() -> None:
    """Send this request's later `read_alias()` reads to the primary: the router calls it for every
    ORM write; raw SQL that writes through `connections[...]` calls it itself."""
    _primary_pinned.set(True)


def unpinned():
    """A fresh request starts unpinned: returns the token `reset_pin` takes back (config.middleware)."""
    return _primary_pinned.set(False)


def reset_pin(token) -> None:
    _primary_pinned.reset(token)


class TenancyRouter:
    """Never returns None: that would fall back to `default`, the owner, which RLS does not filter for us."""

    def db_for_read(self, model, **hints):
        if in_tenant_context():
            return settings.TENANT_DB_ALIAS
        if settings.FLOWS_TENANT_ONLY:
            # An API worker: code that lost its tenant (a thread, a task) must not fall through to staff.
            raise TenancyError(f"No tenant context for a {model._meta.label} query in a tenant-only worker.")
        return settings.CONSOLE_DB_ALIAS

    def db_for_write(self, model, **hints):
        pin_primary()
        return self.db_for_read(model, **hints)

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS
