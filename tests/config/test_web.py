"""Project-level web plumbing: the health probe and the request context every audit event carries."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db(databases="__all__")


def test_healthz_answers_without_a_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert client.post("/healthz").status_code == 405


def test_the_tab_icon_is_served_so_browsers_log_no_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg") and "max-age=86400" in response["Cache-Control"]


def test_a_well_formed_request_id_is_echoed_and_audited_a_bad_one_replaced(client):
    user = User.objects.create_superuser("staff", "staff@thepia.net", "not-used")
    client.force_login(user)
    form = {"code": "acme", "legal_name": "Acme", "domain": "acme.thepia.net", "region": "EU",
            "tier": "free", "applications-TOTAL_FORMS": "0", "applications-INITIAL_FORMS": "0"}  # fmt: skip
    response = client.post(
        reverse("admin:clients_client_add"), form, HTTP_X_REQUEST_ID="req-123.abc", HTTP_USER_AGENT="pytest-agent"
    )
    assert response["X-Request-ID"] == "req-123.abc"
    event = AuditEvent.objects.get(action="client.created")
    assert (event.request_id, event.user_agent, event.ip) == ("req-123.abc", "pytest-agent", "127.0.0.1")

    forged = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert forged["X-Request-ID"] != "bad id\nwith newline" and len(forged["X-Request-ID"]) == 32


@pytest.mark.parametrize(
    "url",
    [
        "/admin/invitations/invitation/?status__exact=%00",
        "/admin/audit/auditevent/?action__exact=%00",
        "/admin/clients/client/?tier__code__exact=%00",
        "/admin/clients/client/?q=a%00b",
        "/admin/clients/client/?%00=x",
    ],
)
def test_a_nul_byte_in_a_query_string_is_a_clear_400_not_a_500(client, url):
    """Issue 8.9: PostgreSQL cannot hold NUL; the database's refusal used to surface as a 500."""
    client.force_login(User.objects.create_superuser("staff", "staff@thepia.net", "not-used"))
    response = client.get(url)
    assert response.status_code == 400
    body = response.content.decode()
    assert "contains a NUL character" in body and "Traceback" not in body and "Django administration" not in body


def test_a_nul_byte_in_a_form_field_is_a_400_and_changes_nothing(client):
    client.force_login(User.objects.create_superuser("staff", "staff@thepia.net", "not-used"))
    form = {"code": "acme", "legal_name": "Acme\x00Corp", "domain": "acme.thepia.net", "region": "EU",
            "tier": "free", "applications-TOTAL_FORMS": "0", "applications-INITIAL_FORMS": "0"}  # fmt: skip
    response = client.post(reverse("admin:clients_client_add"), form)
    assert response.status_code == 400 and "legal_name&#x27; contains a NUL character" in response.content.decode()
    assert not AuditEvent.objects.filter(action="client.created").exists()


def test_a_nul_byte_in_the_user_agent_does_not_break_the_audit_write(client):
    client.force_login(User.objects.create_superuser("staff", "staff@thepia.net", "not-used"))
    form = {"code": "acme", "legal_name": "Acme", "domain": "acme.thepia.net", "region": "EU",
            "tier": "free", "applications-TOTAL_FORMS": "0", "applications-INITIAL_FORMS": "0"}  # fmt: skip
    client.post(reverse("admin:clients_client_add"), form, HTTP_USER_AGENT="agent\x00x")
    assert AuditEvent.objects.get(action="client.created").user_agent == "agent\ufffdx"


@pytest.mark.parametrize(
    ("method", "url", "data"),
    [
        ("get", "/admin/audit/auditevent/?occurred_at__year=-1", None),
        ("get", "/admin/audit/auditevent/?occurred_at__year=99999999999999999999999", None),
        ("post", "/admin/clients/application/add/", {"client": "abc", "app_code": "x", "name": "x"}),
        ("post", "/admin/clients/client/", {"action": "deactivate_selected", "_selected_action": "abc", "index": "0"}),
    ],
)
def test_a_value_the_admin_cannot_use_is_a_400_not_a_500(client, method, url, data):
    """Found by the review of issue 8: ids that are no ids and years out of range, deep inside the admin."""
    client.force_login(User.objects.create_superuser("staff", "staff@thepia.net", "not-used"))
    response = getattr(client, method)(url, data) if data else client.get(url)
    assert response.status_code == 400, response.status_code
    assert "value the console cannot use" in response.content.decode()
