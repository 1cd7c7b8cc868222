"""The database router: `tenant` inside a tenant context, `console` otherwise; migrations only on `default`."""

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from clients.tenancy import in_tenant_context
from config.errors import TenancyError


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
        return self.db_for_read(model, **hints)

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS


def read_alias() -> str:
    """The alias for heavy staff-side reads (the audit changelist, exports): `replica` when configured, else `console`.

    Same roles and policies on the replica, so the same scoping holds; writes never go there.
    """
    return "replica" if "replica" in settings.DATABASES else settings.CONSOLE_DB_ALIAS
