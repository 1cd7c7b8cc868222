"""Django's PostgreSQL backend plus, on the tenant alias: the statement guard and clean reused connections."""

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db.backends.postgresql import base

from clients import tenancy
from config.errors import TenancyError

_guarded_factories: dict[type, type] = {}


def guarded_cursor_factory(factory: type) -> type:
    """The driver's cursor class with `copy()`, `stream()` and `callproc()` behind the tenant guard
    too: they reach the server without passing Django's execute wrappers."""
    if getattr(factory, "flows_guarded", False):
        return factory
    if factory not in _guarded_factories:

        class Guarded(factory):
            flows_guarded = True

            def copy(self, statement, *args, **kwargs):
                tenancy.check_tenant_statement(_django_connection(), statement)
                return super().copy(statement, *args, **kwargs)

            def stream(self, query, *args, **kwargs):
                tenancy.check_tenant_statement(_django_connection(), query)
                return super().stream(query, *args, **kwargs)

            def callproc(self, name, *args, **kwargs):
                # Never transaction control: checked as the statement callproc() will build.
                tenancy.check_tenant_statement(_django_connection(), None)
                return super().callproc(name, *args, **kwargs)

        Guarded.__name__ = Guarded.__qualname__ = f"Guarded{factory.__name__}"
        _guarded_factories[factory] = Guarded
    return _guarded_factories[factory]


def _django_connection():
    from django.db import connections  # noqa: PLC0415 - this module is loaded by connections itself

    return connections[settings.TENANT_DB_ALIAS]


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, settings_dict, alias=DEFAULT_DB_ALIAS):
        super().__init__(settings_dict, alias)
        self.flows_client_id = None
        if self.is_tenant_alias:
            self.execute_wrappers.append(tenancy.guard_tenant_statement)
            pool = settings_dict.get("OPTIONS", {}).get("pool")
            if pool:
                settings_dict["OPTIONS"]["pool"] = {
                    **({} if pool is True else pool),
                    "reset": tenancy.reset_connection,
                }

    @property
    def is_tenant_alias(self) -> bool:
        return self.alias == settings.TENANT_DB_ALIAS

    def get_connection_params(self):
        if reason := self.settings_dict.get("FLOWS_UNAVAILABLE"):
            raise TenancyError(f"The {self.alias} database is not available: {reason}.")
        return super().get_connection_params()

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if self.is_tenant_alias:
            tenancy.assert_connection_clean(connection)
            connection.cursor_factory = guarded_cursor_factory(connection.cursor_factory)
        return connection

    def close_if_unusable_or_obsolete(self):
        """Between requests (Django calls this at each request's start and end): a persistent tenant
        connection kept for the next request is reset exactly as a pooled one is."""
        super().close_if_unusable_or_obsolete()
        if self.is_tenant_alias and self.connection is not None and not self.in_atomic_block and not self.pool:
            try:
                tenancy.reset_connection(self.connection)
            except Exception:  # a connection that cannot be reset is not reused
                self.close()
