"""The client page shows each API key's requests this month, from the counters the API's role writes."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from api.models import Usage
from clients import services
from clients.tenancy import tenant_context


def test_each_api_key_shows_its_requests_this_month(committed, client, make_client):
    """Real commits: the counters are written as the tenant role, which the console role only reads."""
    acme = make_client("acme")
    used, _ = services.create_api_key(actor=None, client=acme, name="prod", scopes=["configuration:read"])
    services.create_api_key(actor=None, client=acme, name="idle", scopes=["configuration:read"])
    with tenant_context(acme):
        for status_class, count in (("2xx", 7), ("4xx", 2)):
            Usage.objects.create(client=acme, day=timezone.now().date(), api_key_id=used.pk, endpoint="x",
                                 status_class=status_class, count=count)  # fmt: skip
    client.force_login(User.objects.create_superuser("root", "root@thepia.net", "not-used"))
    page = client.get(reverse("admin:clients_client_change", args=[acme.pk])).content.decode()
    assert "2xx: 7, 4xx: 2, 5xx: 0" in page  # prod, and the month's total for the client
    assert "no requests" in page  # idle
