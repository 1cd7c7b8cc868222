"""The authentication function's privileges and the policies it needs, as the roles themselves see them."""

from __future__ import annotations

import hashlib
import time

import psycopg
import pytest
from django.conf import settings
from django.db import connections

from clients import dbroles
from tests.conftest import connect_as, connect_as_superuser

committed = pytest.mark.usefixtures("committed")
FUNCTION = "api_authenticate(text, text, integer, text)"


def _owner(statement: str, params=()):
    with connections["default"].cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


@committed
def test_only_flows_app_may_execute_the_function():
    rows = _owner(
        "SELECT has_function_privilege(%s, %s::regprocedure, 'EXECUTE'), has_function_privilege(%s, %s::regprocedure,"
        " 'EXECUTE'), EXISTS (SELECT 1 FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
        " WHERE p.oid = %s::regprocedure AND a.grantee = 0)",
        [settings.APP_ROLE, FUNCTION, settings.CONSOLE_ROLE, FUNCTION, FUNCTION],
    )
    assert rows == [(True, False, False)]
    with connect_as(settings.CONSOLE_DB_ALIAS) as console, pytest.raises(psycopg.errors.InsufficientPrivilege):
        console.execute("SELECT * FROM api_authenticate('x', 'y', 1, 'e')")


@committed
def test_the_function_is_a_definer_with_a_pinned_search_path_owned_by_the_tables_owner():
    rows = _owner(
        "SELECT p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner) = (SELECT pg_get_userbyid(relowner)"
        " FROM pg_class WHERE oid = 'clients_apikey'::regclass) FROM pg_proc p WHERE p.oid = %s::regprocedure",
        [FUNCTION],
    )
    assert rows == [(True, ["search_path=pg_catalog, public", "enable_seqscan=off"], True)]


@committed
def test_every_statement_of_the_function_is_an_index_lookup(world, make_key):
    """Its plans (auto_explain, nested statements, sent to this session) read no table whole: the key
    by prefix, the client by id, the data keys by client_id, the counters by their unique keys
    (api/migrations/0005). Without the function's enable_seqscan=off, the planner hashes the whole
    client and data-key tables for the key lookup at this size."""
    key = make_key(world[0])
    prefix, secret = key.split("_")[1], key.split("_", 2)[2]
    digest = hashlib.sha256(secret.encode()).hexdigest()
    plans: list[str] = []
    with connect_as_superuser() as superuser:
        # Statistics of small tables, as autovacuum keeps them: a table of a few pages is cheaper to
        # read whole than through an index, by the planner's costs, unless the function says otherwise.
        superuser.execute("ANALYZE clients_apikey, clients_client, vault_datakey, api_ratewindow, api_usage")
        superuser.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_nested_statements = on",
            "SET auto_explain.log_level = notice",
            "SET client_min_messages = notice",
            "SET plan_cache_mode = force_generic_plan",  # the plan the pooled connections settle on
            f"SET ROLE {settings.APP_ROLE}",
        ):
            superuser.execute(setting)
        for call in range(4):
            if call == 1:
                # The first call inserted the key's counter rows (PostgreSQL's foreign-key checks ran
                # then); every later request of the day updates them, the path measured here.
                plans.clear()
            row = superuser.execute(
                "SELECT client_id FROM api_authenticate(%s, %s, 10, 'get_client')", [prefix, digest]
            ).fetchone()
            assert row == (world[0].pk,)
    nested = [plan for plan in plans if "api_authenticate(" not in plan.split("\n", 1)[0]]
    assert any("clients_apikey" in plan for plan in nested), plans  # the lookup was seen
    assert any("api_usage" in plan for plan in nested), plans
    assert not [plan for plan in nested if "Seq Scan" in plan or "Hash Join" in plan], nested


@committed
def test_flows_app_still_cannot_read_the_key_table_or_the_rate_windows(world, make_key, app_connection):
    key = make_key(world[0])
    for table in ("clients_apikey", "api_ratewindow"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_connection.execute(f"SELECT * FROM {table}")
        app_connection.rollback()
    # Through the function it gets exactly one row for the right key, none for a wrong one.
    prefix, secret = key.split("_")[1], key.split("_", 2)[2]
    digest = hashlib.sha256(secret.encode()).hexdigest()
    call = "SELECT client_id, key_prefix FROM api_authenticate(%s, %s, 10, 'get_client')"
    assert app_connection.execute(call, [prefix, digest]).fetchall() == [(world[0].pk, prefix)]
    assert app_connection.execute(call, [prefix, "0" * 64]).fetchall() == []
    assert app_connection.execute(call, ["000000000000", digest]).fetchall() == []


@committed
def test_verify_accepts_the_definer_policy_on_its_tables_only():
    assert dbroles.verify() == []
    owner = _owner("SELECT current_user")[0][0]
    _owner(f'CREATE POLICY api_auth_definer ON invitations_invitation TO "{owner}" USING (true) WITH CHECK (true)')
    try:
        assert dbroles.verify() == [f"table invitations_invitation: unexpected policy api_auth_definer (TO {owner})"]
    finally:
        _owner("DROP POLICY api_auth_definer ON invitations_invitation")
    _owner("DROP POLICY api_auth_definer ON clients_apikey")
    try:
        assert dbroles.verify() == [
            "table clients_apikey: policy api_auth_definer for the owner is missing (run migrate)"
        ]
    finally:
        dbroles.apply()
    assert dbroles.verify() == []


@committed
def test_apply_converges_the_function_grants():
    _owner(f"GRANT EXECUTE ON FUNCTION {FUNCTION} TO {settings.CONSOLE_ROLE}")
    _owner(f"REVOKE EXECUTE ON FUNCTION {FUNCTION} FROM {settings.APP_ROLE}")
    problems = dbroles.verify()
    assert (
        f"role {settings.CONSOLE_ROLE} may execute api_authenticate(text,text,integer,text), which is not declared"
        in problems
    )
    dbroles.apply()
    assert dbroles.verify() == []


@committed
def test_the_function_counts_the_request_and_commits_asynchronously(world, make_key, app_connection):
    key = make_key(world[0])
    prefix, secret = key.split("_")[1], key.split("_", 2)[2]
    digest = hashlib.sha256(secret.encode()).hexdigest()
    app_connection.rollback()  # a fresh transaction for the call, as the API's own
    call = "SELECT usage_day FROM api_authenticate(%s, %s, 10, 'get_client')"
    day = app_connection.execute(call, [prefix, digest]).fetchone()[0]
    # Only the function's own transaction gives up waiting for the WAL flush …
    assert app_connection.execute("SELECT current_setting('synchronous_commit')").fetchone() == ("off",)
    app_connection.commit()
    assert app_connection.execute("SELECT current_setting('synchronous_commit')").fetchone() == ("on",)
    app_connection.commit()
    # … and the request is counted, as 2xx, under the key's client.
    rows = _owner(
        "SELECT client_id, day, endpoint, status_class, count FROM api_usage WHERE api_key_id = "
        "(SELECT id FROM clients_apikey WHERE prefix = %s)",
        [prefix],
    )
    assert rows == [(world[0].pk, day, "get_client", "2xx", 1)]
    # A refused key counts nothing.
    assert app_connection.execute(call, [prefix, "0" * 64]).fetchall() == []
    app_connection.commit()
    assert _owner("SELECT sum(count) FROM api_usage")[0][0] == 1


@committed
def test_the_counters_are_updated_in_place_and_a_new_window_starts_at_one(world, make_key, app_connection):
    """After a key's first request the function updates its rate window and usage counter rows
    (api/migrations/0005) with the values the upsert wrote: one counter row per key, endpoint, class
    and day — also for a key bound to no application (NULLS NOT DISTINCT) — a refusal counted as
    4xx and rate_limited, and a window older than the current minute starting again at one."""
    unbound = make_key(world[0], rate_limit=3)
    bound = make_key(world[0], application=world[0].applications.order_by("app_code").first(), rate_limit=3)

    def call(key: str) -> tuple:
        prefix, secret = key.split("_")[1], key.split("_", 2)[2]
        digest = hashlib.sha256(secret.encode()).hexdigest()
        row = app_connection.execute(
            "SELECT rate_used, rate_limit FROM api_authenticate(%s, %s, 10, 'get_client')", [prefix, digest]
        ).fetchone()
        app_connection.commit()
        return row

    def counters(key: str) -> list[tuple]:
        return _owner(
            "SELECT u.application_id IS NULL, u.status_class, u.count, u.rate_limited FROM api_usage u"
            " JOIN clients_apikey a ON a.id = u.api_key_id WHERE a.prefix = %s ORDER BY u.status_class",
            [key.split("_")[1]],
        )

    # The calls below count within one one-minute window: not across a minute's boundary.
    [(second,)] = _owner("SELECT extract(second FROM clock_timestamp())::float")
    if second > 55:
        time.sleep(61 - second)
    # Yesterday's counter of the same key, endpoint and class is left alone.
    _owner(
        "INSERT INTO api_usage (client_id, day, api_key_id, endpoint, status_class, count, rate_limited)"
        " SELECT client_id, (now() AT TIME ZONE 'UTC')::date - 1, id, 'get_client', '2xx', 7, 0"
        " FROM clients_apikey WHERE prefix = %s",
        [unbound.split("_")[1]],
    )
    assert [call(unbound) for _ in range(5)] == [(1, 3), (2, 3), (3, 3), (4, 3), (5, 3)]
    assert _owner("SELECT count FROM api_usage WHERE day < (now() AT TIME ZONE 'UTC')::date") == [(7,)]
    _owner("DELETE FROM api_usage WHERE day < (now() AT TIME ZONE 'UTC')::date")
    assert counters(unbound) == [(True, "2xx", 3, 0), (True, "4xx", 2, 2)]
    assert [call(bound) for _ in range(2)] == [(1, 3), (2, 3)]
    assert counters(bound) == [(False, "2xx", 2, 0)]
    # The window of an earlier minute: the next request starts the current one at 1.
    _owner(
        "UPDATE api_ratewindow SET window_start = window_start - interval '1 minute' WHERE api_key_id ="
        " (SELECT id FROM clients_apikey WHERE prefix = %s)",
        [unbound.split("_")[1]],
    )
    assert call(unbound) == (1, 3)
    assert counters(unbound) == [(True, "2xx", 4, 0), (True, "4xx", 2, 2)]
    assert _owner("SELECT count(*) FROM api_ratewindow")[0][0] == 2
