"""Tenant isolation, tested as the restricted role on committed data: RLS, the guard, the pool, threads."""

from __future__ import annotations

import sys
import threading
import uuid

import psycopg
import pytest
from django.conf import settings
from django.db import ProgrammingError, connections, transaction
from django.db.models import F
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from clients import dbroles, services, tenancy
from clients.models import Application, Client
from clients.tenancy import tenant_context
from config.errors import InvalidInput, TenancyError
from config.postgres.base import DatabaseWrapper
from tests.conftest import connect_as
from vault import services as vault_services
from vault.models import Secret, SecretAccess

pytestmark = pytest.mark.usefixtures("committed")


@pytest.fixture
def two_clients(make_client):
    acme, globex = make_client("acme"), make_client("globex")
    for client in (acme, globex):
        for app_code in ("onboarding", "offboarding"):
            services.configure_application(actor=None, client=client, app_code=app_code)
    return acme, globex


def tenant_tables() -> list[str]:
    return [model._meta.db_table for model in dbroles.tenant_models()]


def test_without_a_tenant_every_tenant_table_reads_nothing_and_refuses_writes(two_clients, app_connection):
    acme, _ = two_clients
    assert set(tenant_tables()) >= {"clients_client", "clients_application", "audit_auditevent"}
    granted = {dbroles.table_name(label) for label in dbroles.APP_GRANTS}
    for table in tenant_tables():
        if table in granted:
            assert app_connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
        else:  # e.g. API keys: the app role never reads them, not even its own
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app_connection.execute(f"SELECT count(*) FROM {table}")
            app_connection.rollback()
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        app_connection.execute(
            "INSERT INTO vault_secretaccess (client_id, secret_id, secret_name, access_type, actor_type, actor_id,"
            " actor_label, reason, user_agent, occurred_at) VALUES (%s, gen_random_uuid(), 'x', 'use', 'system',"
            " '', '', '', '', now())",
            [acme.pk],
        )


def test_an_empty_tenant_setting_reads_nothing(two_clients, app_connection):
    app_connection.execute("SELECT set_config('app.client_id', '', true)")
    assert app_connection.execute("SELECT count(*) FROM clients_application").fetchone()[0] == 0


def test_a_client_reads_and_updates_only_its_own_rows(two_clients):
    acme, globex = two_clients
    globex_app = Application.objects.get(client=globex, app_code="onboarding")
    secrets = {
        client: vault_services.set_secret(actor=None, client=client, provider="slack", secret_type="api_key", value="v")
        for client in two_clients
    }
    with tenant_context(acme):
        assert {a.client_id for a in Application.objects.all()} == {acme.pk}
        assert list(Client.objects.values_list("code", flat=True)) == ["acme"]
        assert Application.objects.filter(pk=globex_app.pk).count() == 0
        assert Secret.objects.update(usage_count=F("usage_count") + 1) == 1
        assert Secret.objects.filter(pk=secrets[globex].pk).update(usage_count=99) == 0
    # Seen from the staff side, globex is untouched.
    assert Secret.objects.get(pk=secrets[globex].pk).usage_count == 0
    assert Secret.objects.get(pk=secrets[acme].pk).usage_count == 1


def test_the_tenant_role_changes_only_the_columns_its_work_needs(two_clients, app_connection):
    """Issue 8.5: applications are read-only to it, secrets' values and invitations' limits out of reach."""
    acme, _ = two_clients
    vault_services.set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="v")
    as_acme = "SELECT set_config('app.client_id', %s, true)"
    for statement in (
        "UPDATE clients_application SET name = 'Renamed'",
        "DELETE FROM clients_application",
        "INSERT INTO clients_application (id, client_id, app_code, name, configuration, features, status,"
        " created_at, updated_at) SELECT gen_random_uuid(), client_id, 'more', 'x', '{}', '{}', 'enabled', now(),"
        " now() FROM clients_application LIMIT 1",
        "UPDATE vault_secret SET ciphertext = '\\x00'",
        "UPDATE vault_secret SET data_key_version = 1",
        "UPDATE vault_secret SET client_id = client_id",
        "DELETE FROM vault_secret",
        "UPDATE invitations_invitation SET max_uses = 1000",
        "UPDATE invitations_invitation SET expires_at = now() + interval '5 years'",
        "UPDATE invitations_invitation SET status = 'pending', used_count = 0, max_uses = 1000,"
        " expires_at = now() + interval '5 years'",
        "DELETE FROM invitations_invitation",
        "LOCK TABLE invitations_invitation IN ACCESS EXCLUSIVE MODE",
        "LOCK TABLE vault_secret IN SHARE MODE",
        "LOCK TABLE audit_chainhead IN EXCLUSIVE MODE",
    ):
        app_connection.execute(as_acme, [str(acme.pk)])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_connection.execute(statement)
        app_connection.rollback()
    app_connection.execute(as_acme, [str(acme.pk)])
    assert app_connection.execute("UPDATE vault_secret SET usage_count = usage_count + 1").rowcount == 1


def test_with_check_refuses_writing_another_clients_id(two_clients):
    acme, globex = two_clients
    with pytest.raises(ProgrammingError, match="row-level security"), tenant_context(acme):
        SecretAccess.objects.create(
            client_id=globex.pk, secret_id=uuid.uuid4(), secret_name="x", access_type="use", actor_type="system"
        )
    assert not SecretAccess.objects.exists()


def test_a_duplicate_in_another_client_gives_the_same_error_as_invalid_input(two_clients):
    acme, globex = two_clients
    secret = vault_services.set_secret(actor=None, client=globex, provider="slack", secret_type="api_key", value="v")
    globex_access = SecretAccess.objects.get(secret_id=secret.pk)
    access = {"client_id": acme.pk, "secret_id": uuid.uuid4(), "secret_name": "x", "access_type": "use",
              "actor_type": "system"}  # fmt: skip
    with pytest.raises(InvalidInput) as duplicate, tenant_context(acme):
        SecretAccess.objects.create(**{**access, "id": globex_access.pk})  # another client's primary key
    with pytest.raises(InvalidInput) as invalid, tenant_context(acme):
        SecretAccess.objects.create(**{**access, "secret_name": None})  # a NOT NULL constraint
    assert (duplicate.value.code, duplicate.value.message) == (invalid.value.code, invalid.value.message)
    assert "globex" not in duplicate.value.message and str(globex_access.pk) not in duplicate.value.message


def test_statements_on_the_tenant_alias_outside_a_tenant_context_raise(two_clients):
    with pytest.raises(TenancyError, match="outside tenant_context"):
        list(Application.objects.using(settings.TENANT_DB_ALIAS).all())
    with pytest.raises(TenancyError, match="outside tenant_context"), connections["tenant"].cursor() as cursor:
        cursor.execute("SELECT 1")


def test_a_statement_on_the_tenant_alias_outside_a_transaction_raises(two_clients):
    acme, _ = two_clients
    token = tenancy._active.set((acme.pk, sys._getframe()))  # a context without its transaction: never via the API
    try:
        with pytest.raises(TenancyError, match="outside a transaction"), connections["tenant"].cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        tenancy._active.reset(token)


def test_switching_tenant_inside_a_transaction_raises(two_clients):
    acme, globex = two_clients
    with tenant_context(acme), pytest.raises(TenancyError, match="switch tenant"), tenant_context(globex):
        pass
    with (
        transaction.atomic(using=settings.TENANT_DB_ALIAS),
        pytest.raises(TenancyError, match="already open"),
        tenant_context(acme),
    ):
        pass
    with tenant_context(acme), tenant_context(acme):  # re-entering the same tenant nests
        assert Application.objects.count() == 2


def test_the_router_sends_tenant_work_to_the_tenant_role_and_the_rest_to_console(two_clients):
    acme, _ = two_clients
    with connections["console"].cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == settings.CONSOLE_ROLE
    with tenant_context(acme), connections["tenant"].cursor() as cursor:
        cursor.execute("SELECT current_user, current_setting('app.client_id')")
        assert cursor.fetchone() == (settings.APP_ROLE, str(acme.pk))
    assert Application.objects.all().db == settings.CONSOLE_DB_ALIAS
    with tenant_context(acme):
        assert Application.objects.all().db == settings.TENANT_DB_ALIAS


def test_the_tenant_setting_does_not_outlive_its_transaction(two_clients):
    acme, _ = two_clients
    with tenant_context(acme):
        pass
    raw = connections["tenant"].connection
    assert raw.execute("SELECT current_setting('app.client_id', true)").fetchone()[0] in (None, "")
    assert raw.execute("SELECT count(*) FROM clients_application").fetchone()[0] == 0
    raw.rollback()


def test_a_pooled_connection_reused_after_an_error_carries_no_tenant(two_clients):
    acme, _ = two_clients
    settings_dict = {**connections["tenant"].settings_dict, "OPTIONS": {"pool": {"min_size": 1, "max_size": 1}}}
    original = connections["tenant"]
    pooled = DatabaseWrapper(settings_dict, alias=settings.TENANT_DB_ALIAS)
    connections["tenant"] = pooled
    try:
        with pytest.raises(ZeroDivisionError), tenant_context(acme):
            assert Application.objects.count() == 2
            first_pid = pooled.connection.info.backend_pid
            1 / 0  # noqa: B018 - an exception inside the tenant transaction
        pooled.close()  # back to the pool (reset callback runs)
        pooled.connect()  # the same physical connection: the pool holds one
        raw = pooled.connection
        assert raw.info.backend_pid == first_pid
        assert raw.execute("SELECT current_setting('app.client_id', true)").fetchone()[0] in (None, "")
        assert raw.execute("SELECT count(*) FROM clients_application").fetchone()[0] == 0
        with tenant_context(acme):
            assert Application.objects.count() == 2
    finally:
        connections["tenant"] = original
        pooled.close()
        pooled.close_pool()


def test_a_connection_arriving_with_a_tenant_set_is_refused():
    connection = connect_as(settings.TENANT_DB_ALIAS)
    connection.autocommit = True
    connection.execute(
        "SELECT set_config('app.client_id', %s, false)", [str(uuid.uuid4())]
    )  # session-level, on purpose
    with pytest.raises(TenancyError, match="carrying a tenant"):
        tenancy.assert_connection_clean(connection)
    assert connection.closed


def test_many_threads_alternating_clients_on_a_small_pool_never_see_a_foreign_row(make_client):
    clients = [make_client(f"client-{n}") for n in range(4)]
    for client in clients:
        services.configure_application(actor=None, client=client, app_code="onboarding")
    settings_dict = {**connections["tenant"].settings_dict, "OPTIONS": {"pool": {"min_size": 2, "max_size": 2}}}
    pooled = DatabaseWrapper(settings_dict, alias=settings.TENANT_DB_ALIAS)
    leaks: list[str] = []
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        connections["tenant"] = DatabaseWrapper(pooled.settings_dict, alias=settings.TENANT_DB_ALIAS)
        try:
            for round_ in range(25):
                client = clients[(offset + round_) % len(clients)]
                try:
                    with tenant_context(client):
                        seen = set(Application.objects.values_list("client_id", flat=True))
                        seen |= set(Client.objects.values_list("id", flat=True))
                        if round_ % 5 == 0:
                            raise RuntimeError("fail inside the transaction")
                except RuntimeError:
                    pass
                if seen != {client.pk}:
                    leaks.append(f"{client.code} saw {seen}")
        except BaseException as error:
            errors.append(error)
        finally:
            connections["tenant"].close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        pooled.close_pool()
    assert not errors, errors
    assert not leaks, leaks[:5]


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.from_regex(r"\A[a-z_]{1,20}\Z"),
    value=st.one_of(
        st.sampled_from(["on", "true", "1", "*", "all", "staff", "bypass", "%", "' OR true --"]), st.text(max_size=40)
    ),
)
def test_no_app_setting_reveals_another_clients_rows(two_clients, name, value):
    acme, _ = two_clients
    with connect_as(settings.TENANT_DB_ALIAS) as connection:
        connection.execute("SELECT set_config(%s, %s, true)", [f"app.{name}", value.replace("\x00", "")])
        connection.execute("SELECT set_config('app.client_id', %s, true)", [str(acme.pk)])
        seen = {row[0] for row in connection.execute("SELECT client_id FROM clients_application")}
        assert seen == {acme.pk}
        # And a client id that is not one valid uuid is an error or nothing, never someone's rows.
        connection.execute("SAVEPOINT probe")
        try:
            connection.execute("SELECT set_config('app.client_id', %s, true)", [value.replace("\x00", "")])
            assert connection.execute("SELECT count(*) FROM clients_application").fetchone()[0] == 0
        except psycopg.errors.InvalidTextRepresentation:
            connection.execute("ROLLBACK TO SAVEPOINT probe")


def test_the_app_role_cannot_truncate_reference_or_trigger(two_clients, app_connection):
    for table in [*tenant_tables(), "clients_tier", "auth_user"]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_connection.execute(f"TRUNCATE {table}")
        app_connection.rollback()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_connection.execute(
            "CREATE TRIGGER t BEFORE INSERT ON clients_application EXECUTE FUNCTION audit_refuse_change()"
        )
    app_connection.rollback()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_connection.execute("CREATE TABLE app_owned (id int)")


def test_the_app_role_is_not_superuser_nor_bypassrls_and_owns_nothing(app_connection):
    row = app_connection.execute(
        "SELECT rolsuper, rolbypassrls, rolinherit, rolcreaterole, rolcreatedb"
        " FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert row == (False, False, False, False, False)
    owned = app_connection.execute(
        "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
    ).fetchone()[0]
    assert owned == 0


def test_the_audit_trail_as_the_tenant_role_shows_only_its_own_events(two_clients):
    acme, globex = two_clients
    with tenant_context(acme):
        assert set(AuditEvent.objects.values_list("client_id", flat=True)) == {acme.pk}
    assert AuditEvent.objects.filter(client_id=globex.pk).exists()


def test_the_app_role_reads_public_signing_keys_but_never_the_wrapped_private_half(app_connection):
    from vault import services as vault_services

    vault_services.rotate_signing_key(actor=None)
    assert len(app_connection.execute("SELECT kid, public_key FROM vault_signingkey").fetchall()) == 1
    app_connection.rollback()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_connection.execute("SELECT wrapped_private_key FROM vault_signingkey")
    app_connection.rollback()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_connection.execute("UPDATE vault_signingkey SET status = 'retired'")
