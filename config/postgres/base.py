"""Django's PostgreSQL backend plus, on the tenant alias: the statement guard, the pool reset and a checkout check."""

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db.backends.postgresql import base

from clients import tenancy


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
                    "reset": tenancy.reset_pooled_connection,
                }

    @property
    def is_tenant_alias(self) -> bool:
        return self.alias == settings.TENANT_DB_ALIAS

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if self.is_tenant_alias:
            tenancy.assert_connection_clean(connection)
        return connection
