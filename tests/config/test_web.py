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
