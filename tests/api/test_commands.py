"""The API's commands and admin: rate limit per key, usage reports."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from clients.models import ApiKey
from tests.api.conftest import Api


@pytest.fixture
def used(manage, world, make_key):
    """acme's key used: two successes and one 404."""
    key = make_key(world[0], rate_limit=50)
    api = Api(key)
    api.get("/client")
    api.get("/client")
    api.get("/applications/missing")
    return key


def test_create_api_key_takes_a_rate_limit(manage, world):
    run = manage("create_api_key", "acme", "--name", "limited", "--scope", "configuration:read", "--rate-limit",
                 "5", "--json")  # fmt: skip
    assert run.code == 0, run.err
    assert run.json["api_key"]["rate_limit"] == 5
    answer = Api(run.json["key"]).get("/client")
    assert answer.headers["RateLimit-Policy"] == '"per-key";q=5;w=60'
    bad = manage("create_api_key", "acme", "--name", "x", "--scope", "configuration:read", "--rate-limit", "0")
    assert bad.code == 2 and "--rate-limit" in bad.err


def test_api_usage_reports_the_month(manage, used):
    month = f"{timezone.now():%Y-%m}"
    run = manage("api_usage", "--client", "acme", "--month", month, "--json")
    assert run.code == 0, run.err
    assert (run.json["total"], run.json["by_status_class"]) == (3, {"2xx": 2, "4xx": 1, "5xx": 0})
    prefix = used.split("_")[1]
    assert {(r["api_key"], r["endpoint"], r["status_class"], r["count"]) for r in run.json["rows"]} == {
        (prefix, "get_client", "2xx", 2), (prefix, "get_application", "4xx", 1),
    }  # fmt: skip
    text = manage("api_usage", "--client", "acme", "--month", month)
    assert "3 API request(s)" in text.out
    assert manage("api_usage", "--client", "acme", "--month", "2026-13").code == 1
    assert manage("api_usage", "--client", "acme", "--month", "1999-01", "--json").json["total"] == 0
    status = manage("client_status", "acme", "--json")
    assert status.json["api_usage_this_month"] == {"2xx": 2, "4xx": 1, "5xx": 0}


def test_the_admin_edits_only_the_rate_limit_and_shows_usage(manage, used, world, client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    client.force_login(admin)
    api_key = ApiKey.objects.get(prefix=used.split("_")[1])
    url = reverse("admin:clients_apikey_change", args=[api_key.pk])
    page = client.get(url).content.decode()
    assert "2xx: 2, 4xx: 1" in page and 'name="rate_limit"' in page and 'name="name"' not in page
    response = client.post(url, {"rate_limit": "7", "name": "renamed"})
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert (api_key.rate_limit, api_key.name) == (7, "key 1")
    event = AuditEvent.objects.get(action="api_key.rate_limit_changed")
    assert event.changes["rate_limit"] == {"old": 50, "new": 7}
    assert Api(used).get("/client").headers["RateLimit-Policy"] == '"per-key";q=7;w=60'
    client_page = client.get(reverse("admin:clients_client_change", args=[world[0].pk])).content.decode()
    assert "API requests this month" in client_page
