"""Issue 8: what an attacker holding the tenant role, or our own code misused, could do — each refused, as that role."""

from __future__ import annotations

import itertools
import threading

import psycopg
import pytest
from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.test.utils import override_settings

from audit.models import AuditEvent, ChainHead
from audit.services import record
from clients import dbroles, services
from clients.models import Application
from clients.tenancy import tenant_context
from config.errors import TenancyError
from config.postgres.base import DatabaseWrapper
from tests.conftest import connect_as, connect_as_superuser

pytestmark = pytest.mark.usefixtures("committed")


@pytest.fixture
def two_clients(make_client):
    acme, globex = make_client("acme"), make_client("globex")
    for client in (acme, globex):
        services.configure_application(actor=None, client=client, app_code="onboarding")
    return acme, globex


def as_tenant(connection, client) -> None:
    connection.execute("SELECT set_config('app.client_id', %s, true)", [str(client.pk)])


# --- 1. Locks that serialise our work -----------------------------------------------------------


def test_advisory_locks_on_the_old_keys_no_longer_hold_up_audit_writes(two_clients):
    """The keys the old record() locked on, held by another session, stop nothing any more."""
    acme, _ = two_clients
    with connect_as_superuser() as other:  # no hardening restrains it: as an unhardened installation would be
        for key in (f"audit:{acme.pk}", "audit:platform"):
            other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [key])
        done = threading.Event()

        def write():
            with connections[settings.CONSOLE_DB_ALIAS].cursor() as cursor:
                cursor.execute("SET lock_timeout = '5s'")
            services.update_client(actor=None, client=acme, legal_name="Acme Renamed")
            services.create_client(
                actor=None, code="initech", legal_name="Initech", domain="initech.thepia.net", region="EU", tier="free"
            )
            done.set()
            connections.close_all()

        thread = threading.Thread(target=write)
        thread.start()
        thread.join(30)
    assert done.is_set()
    assert AuditEvent.objects.filter(client_id=acme.pk, action="client.updated").exists()


def test_the_tenant_role_cannot_lock_another_clients_chain_or_the_platforms(two_clients, app_connection):
    acme, globex = two_clients
    record_platform_event()
    assert ChainHead.objects.filter(client_id=None).exists() and ChainHead.objects.filter(client_id=globex.pk).exists()
    as_tenant(app_connection, acme)
    locked = app_connection.execute("SELECT client_id FROM audit_chainhead FOR UPDATE").fetchall()
    assert locked == [(acme.pk,)]  # its own chain only: the platform's and globex's are invisible
    assert app_connection.execute("UPDATE audit_chainhead SET seq = 0 WHERE client_id IS DISTINCT FROM %s",
                                  [acme.pk]).rowcount == 0  # fmt: skip
    app_connection.rollback()
    # While the tenant role holds its own chain's lock, globex's and the platform's writes go on.
    as_tenant(app_connection, acme)
    app_connection.execute("SELECT 1 FROM audit_chainhead FOR UPDATE")
    services.update_client(actor=None, client=globex, legal_name="Globex Renamed")
    record_platform_event()
    app_connection.rollback()


def record_platform_event():
    with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
        record(actor=None, action="staff.login", target_type="auth.user", target_label="someone")


def test_chains_stay_gapless_under_concurrent_writers(two_clients):
    acme, _ = two_clients
    errors = []

    def rename(n):
        try:
            services.update_client(actor=None, client=acme, legal_name=f"Acme {n}")
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=rename, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    events = list(AuditEvent.objects.filter(client_id=acme.pk).order_by("seq"))
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))
    head = ChainHead.objects.get(client_id=acme.pk)
    assert (head.seq, head.hash) == (events[-1].seq, events[-1].hash)


# --- 2. The guard -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "SET CONSTRAINTS ALL IMMEDIATE; SELECT set_config('app.client_id', '{other}', false)",
        "SAVEPOINT s1; SELECT count(*) FROM clients_application",
        'RELEASE SAVEPOINT "s1"; SELECT 1',
        "SET CONSTRAINTS ALL DEFERRED\n;SELECT 1",
        "ROLLBACK TO SAVEPOINT x; SET app.client_id = '{other}'",
        "SAVEPOINT",
    ],
)
def test_the_guard_refuses_anything_riding_along_with_transaction_control(two_clients, statement):
    _, globex = two_clients
    with pytest.raises(TenancyError, match="outside tenant_context"), connections["tenant"].cursor() as cursor:
        cursor.execute(statement.format(other=globex.pk))


def test_copy_and_stream_on_the_tenant_alias_go_through_the_guard(two_clients):
    with connections["tenant"].cursor() as cursor:
        with pytest.raises(TenancyError, match="outside tenant_context"), cursor.copy("COPY clients_client TO STDOUT"):
            pass
        with pytest.raises(TenancyError, match="outside tenant_context"):
            list(cursor.stream("SELECT id FROM clients_client"))
    acme, _ = two_clients
    with (
        tenant_context(acme),
        connections["tenant"].cursor() as cursor,
        cursor.copy("COPY (SELECT code FROM clients_client) TO STDOUT") as copy,
    ):
        assert b"".join(copy).strip() == b"acme"


# --- 3. Persistent connections ------------------------------------------------------------------


def test_a_persistent_connection_never_carries_a_session_tenant_into_the_next_request(two_clients):
    acme, globex = two_clients
    original = connections["tenant"]
    persistent = DatabaseWrapper({**original.settings_dict, "CONN_MAX_AGE": 60}, alias=settings.TENANT_DB_ALIAS)
    connections["tenant"] = persistent
    try:
        with tenant_context(acme), persistent.cursor() as cursor:
            # A session-level setting, made inside a context: it outlives the transaction.
            cursor.execute("SELECT set_config('app.client_id', %s, false)", [str(globex.pk)])
        pid = persistent.connection.info.backend_pid
        close_old_connections()  # what Django runs between requests
        raw = persistent.connection
        assert raw is not None and raw.info.backend_pid == pid  # the same connection, kept
        assert raw.execute("SELECT current_setting('app.client_id', true)").fetchone()[0] == ""
        with tenant_context(acme):
            assert set(Application.objects.values_list("client_id", flat=True)) == {acme.pk}
    finally:
        connections["tenant"] = original
        persistent.close()


# --- 4. Context that escapes its block ----------------------------------------------------------


def test_a_generator_suspended_inside_a_context_does_not_hand_it_to_its_caller(two_clients):
    acme, _ = two_clients

    def applications():
        with tenant_context(acme):
            yield from Application.objects.values_list("app_code", flat=True)

    rows = applications()
    assert next(rows) == "onboarding"  # the generator's own queries run as acme
    with pytest.raises(TenancyError, match="leaked"):
        list(Application.objects.all())  # the caller, while the generator is suspended: fail loud
    rows.close()
    assert Application.objects.count() == 2  # closed: the context is gone, the caller is staff again


def test_contextmanager_wrappers_and_exit_stacks_keep_the_context_for_their_block(two_clients):
    import contextlib

    acme, _ = two_clients

    @contextlib.contextmanager
    def as_acme():
        with tenant_context(acme):
            yield

    with as_acme():
        assert set(Application.objects.values_list("client_id", flat=True)) == {acme.pk}
    with contextlib.ExitStack() as stack:
        stack.enter_context(tenant_context(acme))
        assert Application.objects.count() == 1


def test_a_thread_started_in_a_context_fails_loud_in_a_tenant_only_worker(two_clients):
    acme, _ = two_clients
    outcome = []

    def lost_context():
        try:
            outcome.append(Application.objects.count())
        except TenancyError as error:
            outcome.append(error)
        finally:
            connections.close_all()

    with override_settings(FLOWS_TENANT_ONLY=True), tenant_context(acme):
        thread = threading.Thread(target=lost_context)
        thread.start()
        thread.join()
    assert isinstance(outcome[0], TenancyError) and "tenant-only" in str(outcome[0])


def test_a_tenant_only_worker_cannot_reach_the_console_database_at_all():
    unavailable = DatabaseWrapper(
        {**connections["console"].settings_dict, "FLOWS_UNAVAILABLE": "this worker runs with FLOWS_TENANT_ONLY"},
        alias=settings.CONSOLE_DB_ALIAS,
    )
    with pytest.raises(TenancyError, match="console database is not available"):
        unavailable.ensure_connection()


# --- 11. Built-ins granted to PUBLIC ------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT pg_advisory_lock(hashtextextended('audit:platform', 0))",
        "SELECT pg_try_advisory_xact_lock(1)",
        "SELECT pg_advisory_lock_shared(1, 2)",
        "SELECT lo_create(0)",
        "SELECT lo_from_bytea(0, '\\x00')",
        "SELECT pg_terminate_backend(pg_backend_pid())",
        "SELECT pg_cancel_backend(1)",
        "SELECT query FROM pg_stat_activity",
        "SELECT * FROM pg_locks",
        "SELECT pg_stat_get_backend_activity(1)",
        "CREATE TEMPORARY TABLE scratch (id int)",
    ],
)
def test_the_tenant_role_has_none_of_the_built_ins_it_does_not_need(app_connection, statement):
    """Fails (never skips) where migrate ran without DATABASE_SUPERUSER_URL: the installation is not hardened."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_connection.execute(statement)


@pytest.mark.parametrize("database", ["postgres", "template1"])
def test_the_tenant_role_cannot_connect_to_other_databases(database):
    params = connections[settings.TENANT_DB_ALIAS].get_connection_params()
    params = {key: value for key, value in params.items() if key not in ("cursor_factory", "context")}
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(**{**params, "dbname": database})


def test_health_check_reports_each_missing_hardening_step():
    assert dbroles.verify_hardening() == []
    with connect_as_superuser() as admin:
        admin.execute("GRANT EXECUTE ON FUNCTION pg_advisory_lock(bigint) TO PUBLIC")
        admin.execute("GRANT SELECT ON pg_catalog.pg_stat_activity TO PUBLIC")
        try:
            problems = dbroles.verify_hardening()
            assert any("advisory locks" in problem for problem in problems), problems
            assert any("pg_stat_activity" in problem for problem in problems), problems
        finally:
            dbroles.harden(settings.DATABASE_SUPERUSER_URL, database=connections["default"].settings_dict["NAME"])
    assert dbroles.verify_hardening() == []


# --- Found by the review of this issue ------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_chainhead SET seq = 1",
        "UPDATE audit_chainhead SET seq = seq + 1",
        "UPDATE audit_chainhead SET hash = repeat('0', 64)",
    ],
)
def test_the_tenant_role_cannot_move_its_chain_head_to_block_its_clients_writes(two_clients, app_connection, statement):
    acme, _ = two_clients
    as_tenant(app_connection, acme)
    with pytest.raises(psycopg.errors.CheckViolation):
        app_connection.execute(statement)
    app_connection.rollback()
    services.update_client(actor=None, client=acme, legal_name="Still Writable")


def test_an_event_the_tenant_role_inserts_must_follow_the_head_and_moves_it(two_clients, app_connection):
    """An event beside the head (a seq the head does not know) would make every later write collide."""
    acme, _ = two_clients
    head = ChainHead.objects.get(client_id=acme.pk)
    columns = (
        "occurred_at, client_id, client_code, actor_type, actor_id, actor_label, action, target_type, target_id,"
        " target_label, changes, user_agent, request_id, chain"
    )
    insert = (
        f"INSERT INTO audit_auditevent ({columns}, seq, prev_hash, hash, key_id, mac) VALUES (now(), %s, 'acme',"
        " 'system', '', '', 'x', '', '', '', '{}', '', '', %s, %s, %s, %s, 'k', repeat('a', 64))"
    )
    as_tenant(app_connection, acme)
    with pytest.raises(psycopg.errors.CheckViolation):
        app_connection.execute(insert, [acme.pk, str(acme.pk), head.seq + 5, head.hash, "f" * 64])
    app_connection.rollback()
    as_tenant(app_connection, acme)
    app_connection.execute(insert, [acme.pk, str(acme.pk), head.seq + 1, head.hash, "f" * 64])
    app_connection.commit()
    assert ChainHead.objects.get(client_id=acme.pk).seq == head.seq + 1  # the insert moved the head
    services.update_client(actor=None, client=acme, legal_name="Still Writable")  # and writes go on
    assert ChainHead.objects.get(client_id=acme.pk).seq == head.seq + 2


def test_a_runtime_role_that_changed_its_own_settings_is_reported_and_migrate_resets_it(two_clients, app_connection):
    app_connection.execute("ALTER ROLE flows_app SET search_path = evil")
    app_connection.commit()
    try:
        assert any("role flows_app has settings" in problem for problem in dbroles.verify()), dbroles.verify()
    finally:
        dbroles.apply()
    assert dbroles.verify() == []
    with connect_as(settings.CONSOLE_DB_ALIAS) as console:
        # Staff work gives up on a row the tenant role holds (its client's, via a foreign-key check).
        assert console.execute("SHOW lock_timeout").fetchone()[0] == "15s"


def test_callproc_on_the_tenant_alias_goes_through_the_guard(two_clients):
    _, globex = two_clients
    with pytest.raises(TenancyError, match="outside tenant_context"), connections["tenant"].cursor() as cursor:
        cursor.callproc("set_config", ["app.client_id", str(globex.pk), False])


def test_only_the_tenancy_machinery_uses_the_driver_connection_behind_the_guard():
    """Ratchet: `connection.connection` reaches the server without the tenant guard."""
    import re
    from pathlib import Path

    allowed = {"clients/tenancy.py", "config/postgres/base.py", "config/views.py",
               "clients/management/commands/health_check.py"}  # fmt: skip
    root = Path(settings.BASE_DIR)
    users = {
        str(path.relative_to(root))
        for app in ("api", "audit", "clients", "config", "invitations", "vault")
        for path in (root / app).rglob("*.py")
        if re.search(r"\bconnection\.connection\b", path.read_text())
    }
    assert users <= allowed, sorted(users - allowed)
