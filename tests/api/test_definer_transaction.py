"""The definer call commits on its own before the tenant transaction opens, in the same round trip
(`tenant_context.from_definer`): on committed data, as production runs it."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import DatabaseError, connections
from psycopg import pq

from api import endpoints
from api.models import Usage
from clients.models import ApiKey
from clients.tenancy import current_client_id, tenant_context
from config.errors import TenancyError
from tests.api.conftest import Api
from tests.conftest import connect_as_superuser

committed = pytest.mark.usefixtures("committed")


@committed
def test_while_the_view_runs_the_keys_counters_are_committed_and_unlocked(world, make_key, monkeypatch):
    key = make_key(world[0])
    key_id = ApiKey.objects.get(prefix=key.split("_")[1]).pk
    seen = {}
    client = endpoints._client

    def inside_the_view(principal):
        with connections[settings.TENANT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT current_setting('app.client_id'), txid_current_if_assigned()")
            seen["tenant"], seen["xid"] = cursor.fetchone()
        # Another session can lock the rows the definer call wrote: their locks ended with its COMMIT.
        with connect_as_superuser() as other, other.transaction():
            other.execute("SET LOCAL lock_timeout = '1ms'")
            seen["used"] = other.execute(
                "SELECT used FROM api_ratewindow WHERE api_key_id = %s FOR UPDATE NOWAIT", [key_id]
            ).fetchone()[0]
            seen["count"] = other.execute(
                "SELECT count FROM api_usage WHERE api_key_id = %s AND endpoint = 'get_client' FOR UPDATE NOWAIT",
                [key_id],
            ).fetchone()[0]
            other.execute("UPDATE clients_apikey SET name = name WHERE id = %s", [key_id])
        return client(principal)

    monkeypatch.setattr(endpoints, "_client", inside_the_view)
    answer = Api(key).get("/client")
    assert answer.status == 200, answer.body
    assert seen == {"tenant": str(world[0].pk), "xid": None, "used": 1, "count": 1}, (
        "the tenant transaction is the view's own, read-only, set to the key's client"
    )
    with connect_as_superuser() as owner:
        assert owner.execute("SELECT used FROM api_ratewindow WHERE api_key_id = %s", [key_id]).fetchone() == (1,)
    assert Usage.objects.get(api_key_id=key_id).count == 1


@committed
def test_a_bad_key_leaves_no_transaction_and_no_tenant_behind(world, make_key):
    good = make_key(world[0])
    answer = Api("flk_000000000000_" + good.split("_", 2)[2]).get("/client")
    assert answer.status == 401
    connection = connections[settings.TENANT_DB_ALIAS]
    assert current_client_id() is None and connection.flows_client_id is None
    assert not connection.in_atomic_block and connection.get_autocommit()
    assert connection.connection.pgconn.transaction_status == pq.TransactionStatus.IDLE
    assert Api(good).get("/client").status == 200, "the connection is usable for the next request"


@committed
def test_the_block_of_a_refused_key_has_no_tenant_and_cannot_query(world):
    call = "SELECT * FROM api_authenticate(%s, %s, 10, 'get_client')"
    with tenant_context.from_definer(call, ["000000000000", "0" * 64]) as row:
        assert row is None and current_client_id() is None
        with pytest.raises(TenancyError), connections[settings.TENANT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
    assert not connections[settings.TENANT_DB_ALIAS].in_atomic_block


@committed
def test_a_failing_definer_call_rolls_everything_back(world):
    with pytest.raises(DatabaseError), tenant_context.from_definer("SELECT * FROM no_such_function(%s)", [1]):
        pass  # pragma: no cover - the call fails before the block
    connection = connections[settings.TENANT_DB_ALIAS]
    assert current_client_id() is None and not connection.in_atomic_block
    assert connection.connection.pgconn.transaction_status == pq.TransactionStatus.IDLE


@committed
def test_from_definer_refuses_to_run_inside_a_tenant_context(world):
    call = tenant_context.from_definer("SELECT * FROM api_authenticate(%s, %s, 10, 'x')", ["a", "b"])
    with tenant_context(world[0]), pytest.raises(TenancyError, match="before entering a tenant context"), call:
        pass  # pragma: no cover


@committed
def test_from_definer_takes_one_statement_only(world):
    smuggled = "SELECT * FROM api_authenticate(%s, %s, 10, 'x'); SELECT 1"
    with pytest.raises(TenancyError, match="one statement"), tenant_context.from_definer(smuggled, ["a", "b"]):
        pass  # pragma: no cover
    connection = connections[settings.TENANT_DB_ALIAS]
    assert current_client_id() is None and not connection.in_atomic_block and connection.get_autocommit()
