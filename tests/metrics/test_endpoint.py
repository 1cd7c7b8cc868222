"""/metrics: its protection, and exact values after known actions, scraped and parsed as Prometheus would."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client as Browser
from django.test.client import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from api.models import Usage
from audit.models import AuditEvent
from invitations import services as invitation_services
from metrics.middleware import RequestMetricsMiddleware
from tests.api.conftest import Api
from tests.audit.conftest import as_superuser
from tests.invitations.conftest import ADA, GRACE
from tests.metrics.conftest import TOKEN, scrape, value

pytestmark = pytest.mark.usefixtures("committed")


def test_without_a_token_setting_the_endpoint_does_not_exist(settings):
    settings.FLOWS_METRICS_TOKEN = ""
    assert Browser().get("/metrics").status_code == 404
    assert Browser().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer é"],
)
def test_without_the_right_bearer_token_it_is_401_and_says_nothing(authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = Browser().get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"flows_" not in response.content and TOKEN.encode() not in response.content


def test_with_the_token_it_answers_and_only_to_get():
    assert Browser().get("/metrics", HTTP_AUTHORIZATION=f"bearer  {TOKEN} ").status_code == 200
    assert Browser().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405
    samples = scrape()
    assert value(samples, "flows_db_up") == 1


def test_invitations_issued_redeemed_and_revoked_per_client_application_and_tier(world, issue, make_key):
    acme = world[0]
    (_, ada_token), (grace, _) = issue(ADA), issue(GRACE)
    samples = scrape()
    assert value(samples, "flows_client_invitations", client="acme", application="onboarding", status="pending") == 2
    assert value(samples, "flows_invitations", tier="pro", status="pending") == 2
    assert value(samples, "flows_invitations", tier="pro", status="accepted") == 0
    assert value(samples, "flows_client_seats_used", client="acme", tier="pro") == 2
    assert value(samples, "flows_client_seats_limit", client="acme", tier="pro") == 1000
    assert value(samples, "flows_client_seats_used", client="globex", tier="pro") is None  # no invitation, no seat

    redeemed = Api(make_key(acme)).post("/invitations/redeem", {"token": ada_token})
    assert redeemed.status == 200
    invitation_services.revoke_invitation(actor=None, invitation=grace, reason="sent to the wrong address")
    samples = scrape()
    by_status = {
        status: value(samples, "flows_client_invitations", client="acme", application="onboarding", status=status)
        for status in ("pending", "accepted", "revoked", "expired")
    }
    assert by_status == {"pending": None, "accepted": 1, "revoked": 1, "expired": None}
    assert value(samples, "flows_invitations", tier="pro", status="accepted") == 1
    assert value(samples, "flows_invitations", tier="pro", status="revoked") == 1
    assert value(samples, "flows_invitations", tier="pro", status="pending") == 0
    assert value(samples, "flows_client_seats_used", client="acme", tier="pro") == 1  # the one redeemed use
    assert value(samples, "flows_client_api_requests_total", client="acme", status_class="2xx") == 1
    assert value(samples, "flows_api_requests_total", tier="pro", status_class="2xx") == 1


def test_invitations_expiring_soon_then_expired_by_cleanup(world, issue, manage):
    issue(ADA, expires_in=timedelta(hours=3))
    issue(GRACE, expires_in=timedelta(days=7))
    samples = scrape()
    assert value(samples, "flows_invitations_expiring_soon", tier="pro") == 1
    assert value(samples, "flows_client_invitations_expiring_soon", client="acme", application="onboarding") == 1
    assert value(samples, "flows_cleanup_last_run_timestamp_seconds") is None  # never ran: absent()
    with time_machine.travel(timezone.now() + timedelta(hours=4)):
        assert manage("cleanup_invitations").code == 0
    samples = scrape()
    run = AuditEvent.objects.get(action="invitation.cleanup")
    assert value(samples, "flows_cleanup_last_run_timestamp_seconds") == run.occurred_at.timestamp()
    assert value(samples, "flows_cleanup_last_run_expired") == 1
    assert value(samples, "flows_cleanup_last_run_purged") == 0
    assert value(samples, "flows_client_invitations", client="acme", application="onboarding", status="expired") == 1
    assert value(samples, "flows_invitations_expiring_soon", tier="pro") == 0


def test_a_429_is_counted_per_client_and_per_tier(world, make_key):
    api = Api(make_key(world[0], rate_limit=1))
    assert [api.get("/client").status, api.get("/client").status] == [200, 429]
    assert Usage.objects.get(status_class="4xx").rate_limited == 1
    samples = scrape()
    assert value(samples, "flows_client_api_rate_limited_total", client="acme") == 1
    assert value(samples, "flows_client_api_requests_total", client="acme", status_class="2xx") == 1
    assert value(samples, "flows_client_api_requests_total", client="acme", status_class="4xx") == 1
    assert value(samples, "flows_api_rate_limited_total", tier="pro") == 1
    assert value(samples, "flows_api_requests_total", tier="pro", status_class="4xx") == 1
    assert value(samples, "flows_client_api_rate_limited_total", client="globex") is None


def test_failed_sign_ins_and_lockouts_are_counted(settings):
    settings.AXES_FAILURE_LIMIT = 3
    User.objects.create_user("officer", password="Corr3ct-horse-battery", is_staff=True)
    browser, login = Browser(), reverse("admin:login")
    browser.post(login, {"username": "officer", "password": "wrong"})
    samples = scrape()
    assert value(samples, "flows_staff_sign_in_failures_total") == 1
    assert value(samples, "flows_staff_lockouts_total") == 0
    assert value(samples, "flows_staff_locked_out") == 0
    for _ in range(2):
        browser.post(login, {"username": "officer", "password": "wrong"})
    samples = scrape()
    assert value(samples, "flows_staff_sign_in_failures_total") == 3
    assert value(samples, "flows_staff_lockouts_total") == AuditEvent.objects.filter(action="staff.locked_out").count()
    assert value(samples, "flows_staff_lockouts_total") >= 1
    assert value(samples, "flows_staff_locked_out") == 1


def test_audit_verification_and_checkpoint(make_client, manage, tmp_path):
    acme, _ = make_client("acme"), make_client("globex")
    assert value(scrape(), "flows_audit_verification_ok") is None
    assert manage("verify_audit").code == 0
    samples = scrape()
    run = AuditEvent.objects.get(action="audit.verified")
    assert run.changes["scope"] == "all" and run.changes["ok"] is True and run.client_id is None
    assert value(samples, "flows_audit_verification_ok") == 1
    assert value(samples, "flows_audit_verification_problems") == 0
    assert value(samples, "flows_audit_verification_last_timestamp_seconds") == run.occurred_at.timestamp()

    target = AuditEvent.objects.filter(client_id=acme.pk).first()
    as_superuser(("UPDATE audit_auditevent SET actor_label = 'someone else' WHERE id = %s", [target.id]))
    assert manage("verify_audit").code == 1
    samples = scrape()
    assert value(samples, "flows_audit_verification_ok") == 0
    assert value(samples, "flows_audit_verification_problems") == 1
    # A run over one (intact) client's chain says nothing of the others: the last full run still counts.
    assert manage("verify_audit", "--client", "globex").code == 0
    assert AuditEvent.objects.filter(action="audit.verified").count() == 3
    assert (value(scrape(), "flows_audit_verification_ok"), value(scrape(), "flows_audit_verification_problems")) == (
        0,
        1,
    )

    assert value(samples, "flows_audit_checkpoint_last_timestamp_seconds") is None
    assert manage("audit_checkpoint", "--output-dir", str(tmp_path)).code == 0
    checkpointed = AuditEvent.objects.get(action="audit.checkpointed")
    assert value(scrape(), "flows_audit_checkpoint_last_timestamp_seconds") == checkpointed.occurred_at.timestamp()


def test_requests_are_timed_per_door_method_and_status_class(world, make_key):
    api = Api(make_key(world[0]))

    def count(**labels):
        return value(scrape(), "flows_http_request_duration_seconds_count", **labels) or 0

    api_ok = {"door": "api", "method": "GET", "status_class": "2xx"}
    api_unauthorized = {"door": "api", "method": "GET", "status_class": "4xx"}
    admin_ok = {"door": "admin", "method": "GET", "status_class": "2xx"}
    before = count(**api_ok), count(**api_unauthorized), count(**admin_ok)
    api.get("/client")
    Api("flk_nope").get("/client")
    Browser().get(reverse("admin:login"))
    assert (count(**api_ok), count(**api_unauthorized), count(**admin_ok)) == (
        before[0] + 1,
        before[1] + 1,
        before[2] + 1,
    )


def test_an_exception_that_escapes_every_layer_counts_as_a_5xx():
    def explode(request):
        raise RuntimeError("boom")

    labels = {"door": "other", "method": "other", "status_class": "5xx"}
    before = value(scrape(), "flows_http_request_duration_seconds_count", **labels) or 0
    with pytest.raises(RuntimeError):
        RequestMetricsMiddleware(explode)(RequestFactory().generic("BREW", "/teapot"))
    assert value(scrape(), "flows_http_request_duration_seconds_count", **labels) == before + 1


def test_a_scrape_reads_as_the_console_role_only_with_a_fixed_number_of_queries(make_client):
    def queries_by_alias() -> dict[str, int]:
        with (
            CaptureQueriesContext(connections["default"]) as owner,
            CaptureQueriesContext(connections[settings.CONSOLE_DB_ALIAS]) as console,
            CaptureQueriesContext(connections[settings.TENANT_DB_ALIAS]) as tenant,
        ):
            scrape()
        return {"default": len(owner), "console": len(console), "tenant": len(tenant)}

    make_client("acme")
    few = queries_by_alias()
    for number in range(12):
        make_client(f"client{number}", tier="free")
    assert queries_by_alias() == few
    # Nine reads (the ping, then eight in one read-only transaction with BEGIN, SET, COMMIT), nothing elsewhere.
    assert few == {"default": 0, "console": 12, "tenant": 0}
    assert connections[settings.CONSOLE_DB_ALIAS].settings_dict["USER"] == settings.CONSOLE_ROLE


def test_a_tenant_only_worker_reports_no_database_figures(settings, make_client):
    make_client("acme")
    settings.FLOWS_TENANT_ONLY = True
    with CaptureQueriesContext(connections[settings.CONSOLE_DB_ALIAS]) as console:
        samples = scrape()
    assert len(console) == 0
    assert not any(name.startswith(("flows_clients", "flows_invitations", "flows_db_up")) for name, _ in samples)


def test_a_database_that_does_not_answer_is_reported_not_an_error():
    console = connections[settings.CONSOLE_DB_ALIAS]
    console.close()
    port = console.settings_dict["PORT"]
    console.settings_dict["PORT"] = 1  # nothing listens there
    try:
        samples = scrape()
    finally:
        console.close()
        console.settings_dict["PORT"] = port
    assert value(samples, "flows_db_up") == 0
    assert not any(name.startswith("flows_invitations") for name, _ in samples)


def test_a_verification_against_a_stream_that_is_no_checkpoint_stream_is_not_recorded(make_client, manage, tmp_path):
    make_client("acme")
    stream = tmp_path / "not-checkpoints.jsonl"
    stream.write_text('{"action": "client.created"}\nnot json\n')
    run = manage("verify_audit", "--checkpoints", str(stream))
    assert run.code == 1 and "is not a checkpoint" in run.out
    assert not AuditEvent.objects.filter(action="audit.verified").exists()
    assert value(scrape(), "flows_audit_verification_ok") is None
