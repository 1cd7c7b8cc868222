"""The audit event page with committed data: its verification is checked against a row the superuser edited."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from django.urls import reverse

from audit.models import AuditEvent
from tests.audit.conftest import as_superuser


def test_event_page_shows_old_to_new_its_chain_position_and_that_it_verifies(client, acme):
    client.force_login(User.objects.create_superuser("auditor", "auditor@thepia.net", "not-used"))
    first, middle, last = AuditEvent.objects.filter(client_id=acme.pk, action="client.updated").order_by("seq")[:3]
    page = client.get(reverse("admin:audit_auditevent_change", args=[middle.pk])).content.decode()
    assert re.search(r"<th>legal_name</th><td>Acme One</td><td>→</td><td>Acme Two</td>", page)
    assert f"seq {middle.seq} of the chain of acme" in page
    assert reverse("admin:audit_auditevent_change", args=[first.pk]) in page
    assert reverse("admin:audit_auditevent_change", args=[last.pk]) in page
    assert "<strong>verifies</strong>" in page
    # The target still exists: a link to its page.
    assert f'<a href="{reverse("admin:clients_client_change", args=[acme.pk])}">clients.client: acme' in page

    as_superuser(("UPDATE audit_auditevent SET target_label = 'someone else' WHERE id = %s", [middle.pk]))
    page = client.get(reverse("admin:audit_auditevent_change", args=[middle.pk])).content.decode()
    assert "does not verify" in page and f"edited: event {middle.pk}" in page
