"""A real streaming replica (issue 13.4): the `replica` alias, `read_alias()`, reads after writes, and RLS there."""

from __future__ import annotations

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections, transaction
from django.http import HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from audit.selectors import events_in_chain_order
from clients import services
from clients.models import Application, Client
from config import routers
from config.middleware import RequestContextMiddleware
from config.routers import REPLICA_ALIAS, read_alias
from reports.analytics import client_month_figures
from reports.dashboard import dashboard
from tests.conftest import connect_as_superuser
from tests.scaling.conftest import wait_for_replay

pytestmark = pytest.mark.usefixtures("committed")


@pytest.fixture
def request_scope():
    """What RequestContextMiddleware does around each request: start unpinned, forget the pin afterwards."""
    token = routers.unpinned()
    try:
        yield
    finally:
        routers.reset_pin(token)


@pytest.fixture
def two_clients(make_client, replica):
    acme, globex = make_client("acme"), make_client("globex")
    for client in (acme, globex):
        services.configure_application(actor=None, client=client, app_code="onboarding")
    wait_for_replay(replica)
    return acme, globex


def test_the_replica_alias_is_the_console_role_on_a_streaming_standby_of_the_test_database(replica):
    with connections[REPLICA_ALIAS].cursor() as cursor:
        cursor.execute("SELECT current_user, current_database(), pg_is_in_recovery(), current_setting('port')")
        user, database, in_recovery, port = cursor.fetchone()
    assert (user, in_recovery, int(port)) == (settings.CONSOLE_ROLE, True, replica.port)
    assert database == connections[settings.CONSOLE_DB_ALIAS].settings_dict["NAME"]
    with connect_as_superuser() as primary:
        states = [row[0] for row in primary.execute("SELECT state FROM pg_stat_replication")]
    assert "streaming" in states


def test_read_alias_names_the_replica_only_when_one_is_configured_and_nothing_was_written(
    replica, request_scope, monkeypatch
):
    assert read_alias() == REPLICA_ALIAS
    with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
        assert read_alias() == settings.CONSOLE_DB_ALIAS  # a read inside a transaction sees its own writes
    assert read_alias() == REPLICA_ALIAS
    routers.pin_primary()
    assert read_alias() == settings.CONSOLE_DB_ALIAS
    token = routers.unpinned()
    try:
        databases = {alias: value for alias, value in settings.DATABASES.items() if alias != REPLICA_ALIAS}
        monkeypatch.setattr(settings, "DATABASES", databases)
        assert read_alias() == settings.CONSOLE_DB_ALIAS
    finally:
        routers.reset_pin(token)


def test_everything_but_read_alias_reads_and_writes_on_the_primary(two_clients, request_scope):
    assert Client.objects.all().db == settings.CONSOLE_DB_ALIAS
    assert Client.objects.using(read_alias()).db == REPLICA_ALIAS
    assert set(Client.objects.using(read_alias()).values_list("code", flat=True)) == {"acme", "globex"}
    with pytest.raises(Exception, match="read-only transaction"):
        Client.objects.using(REPLICA_ALIAS).filter(code="acme").update(legal_name="Renamed")


def test_a_read_after_a_write_goes_to_the_primary_while_the_replica_lags(two_clients, replica, request_scope):
    """Replay paused on the replica: a client created now is missing there. The same request's read through
    read_alias() must find it, because the write pinned the request to the primary."""
    with replica.connect_superuser() as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            assert read_alias() == REPLICA_ALIAS
            services.create_client(
                actor=None, code="initech", legal_name="Initech", domain="initech.thepia.net", region="EU",
                tier="enterprise",
            )  # fmt: skip
            assert not Client.objects.using(REPLICA_ALIAS).filter(code="initech").exists(), "the replica lags"
            assert read_alias() == settings.CONSOLE_DB_ALIAS
            assert Client.objects.using(read_alias()).filter(code="initech").exists()
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
    wait_for_replay(replica)
    assert Client.objects.using(REPLICA_ALIAS).filter(code="initech").exists()


def test_the_middleware_pins_a_request_that_writes_and_the_next_request_starts_unpinned(two_clients, replica):
    acme, _ = two_clients
    seen = []

    def view(request):
        seen.append(read_alias())
        if request.method == "POST":
            Client.objects.filter(pk=acme.pk).update(legal_name="Acme Renamed")
        seen.append(read_alias())
        return HttpResponse("ok")

    middleware = RequestContextMiddleware(view)
    middleware(RequestFactory().post("/"))
    middleware(RequestFactory().get("/"))
    assert seen == [REPLICA_ALIAS, settings.CONSOLE_DB_ALIAS, REPLICA_ALIAS, REPLICA_ALIAS]


def test_rls_holds_on_the_replica_for_the_tenant_role(two_clients, replica):
    acme, _ = two_clients
    with connect_as_superuser() as primary, replica.connect_superuser() as standby:
        query = "SELECT tablename, policyname, roles, qual, with_check FROM pg_policies ORDER BY 1, 2"
        assert standby.execute(query).fetchall() == primary.execute(query).fetchall()
        forced = "SELECT relname FROM pg_class WHERE relrowsecurity AND relforcerowsecurity ORDER BY 1"
        assert standby.execute(forced).fetchall() == primary.execute(forced).fetchall()
    with replica.connect_as(settings.TENANT_DB_ALIAS) as app:
        assert app.execute("SELECT current_user, pg_is_in_recovery()").fetchone() == (settings.APP_ROLE, True)
        assert app.execute("SELECT count(*) FROM clients_application").fetchone()[0] == 0  # no tenant, no rows
        app.execute("SELECT set_config('app.client_id', %s, true)", [str(acme.pk)])
        assert {row[0] for row in app.execute("SELECT client_id FROM clients_application")} == {acme.pk}
        assert {row[0] for row in app.execute("SELECT code FROM clients_client")} == {"acme"}
        app.rollback()
        assert app.execute("SELECT count(*) FROM clients_client").fetchone()[0] == 0  # the setting ended with it
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT count(*) FROM clients_apikey")
        app.rollback()
    with replica.connect_as(settings.CONSOLE_DB_ALIAS) as console:
        assert console.execute("SELECT count(*) FROM clients_application").fetchone()[0] == 2
    assert Application.objects.using(REPLICA_ALIAS).count() == 2


def test_analytics_and_exports_read_on_the_replica(two_clients, request_scope):
    acme, _ = two_clients
    with (
        CaptureQueriesContext(connections[REPLICA_ALIAS]) as on_replica,
        CaptureQueriesContext(connections[settings.CONSOLE_DB_ALIAS]) as on_primary,
    ):
        figures = client_month_figures(acme, "2026-11")
        events = list(events_in_chain_order(client_id=acme.pk))  # what an export streams
    assert "onboarding" in figures.by_application and events
    assert len(on_replica) >= 3 and len(on_primary) == 0, [q["sql"][:80] for q in on_primary.captured_queries]
    # The dashboard's figures too; only the staff member's own grants are read on the primary.
    staff = User.objects.create_superuser("replica-reader", "reader@thepia.net", None)
    routers.unpinned()  # a later request: the write above pinned this one to the primary
    with CaptureQueriesContext(connections[REPLICA_ALIAS]) as on_replica:
        board = dashboard(staff)
    assert board.clients_by_tier and len(on_replica) >= 8
