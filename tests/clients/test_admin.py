"""The staff console: writes go through the services, destructive actions confirm, changelists do not N+1."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from clients import services
from clients.models import Application, Client

pytestmark = pytest.mark.django_db(databases="__all__")

NO_INLINE_FORMS = {"applications-TOTAL_FORMS": "0", "applications-INITIAL_FORMS": "0"}


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("staff", "staff@thepia.net", "not-used")
    client.force_login(user)
    return user


def populate(make_client, codes: list[str]) -> None:
    for code in codes:
        acme = make_client(code, tier="pro")
        services.configure_application(actor=None, client=acme, app_code="onboarding", features=["sso"])
        services.configure_application(actor=None, client=acme, app_code="offboarding")
        services.update_client(actor=None, client=acme, legal_name=f"{code} Holding")
        services.create_api_key(actor=None, client=acme, name="prod", scopes=["configuration:read"])


def changelist_queries(client, url: str) -> int:
    client.get(url)  # warm the per-process caches (content types, permissions)
    with CaptureQueriesContext(connections[settings.CONSOLE_DB_ALIAS]) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:clients_client_changelist",
        "admin:clients_application_changelist",
        "admin:clients_tier_changelist",
        "admin:clients_apikey_changelist",
        "admin:audit_auditevent_changelist",
    ],
)
def test_changelist_queries_do_not_grow_with_rows(client, staff, make_client, url_name):
    url = reverse(url_name)
    populate(make_client, ["acme", "globex"])
    few = changelist_queries(client, url)
    populate(make_client, ["initech", "umbrella", "hooli", "stark", "wayne"])
    assert changelist_queries(client, url) == few


def test_client_change_page_queries_do_not_grow_with_applications(client, staff, make_client):
    acme = make_client("acme", tier="enterprise")
    services.configure_application(actor=None, client=acme, app_code="a1")
    url = reverse("admin:clients_client_change", args=[acme.pk])
    few = changelist_queries(client, url)
    for index in range(2, 8):
        services.configure_application(actor=None, client=acme, app_code=f"a{index}")
    assert changelist_queries(client, url) == few


def test_adding_a_client_in_the_admin_goes_through_the_service(client, staff):
    response = client.post(
        reverse("admin:clients_client_add"),
        {
            "code": "acme",
            "legal_name": "Acme Corporation",
            "domain": "Acme-Corp.thepia.net",
            "region": "EU",
            "tier": "pro",
            **NO_INLINE_FORMS,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    acme = Client.objects.get(code="acme")
    assert acme.domain == "acme-corp.thepia.net"
    event = AuditEvent.objects.get(action="client.created")
    assert (event.actor_type, event.actor_label, event.client_id) == ("user", "staff", acme.pk)


def test_bad_input_in_the_admin_form_is_shown_and_changes_nothing(client, staff, make_client):
    make_client("acme")
    response = client.post(
        reverse("admin:clients_client_add"),
        {
            "code": "Not Valid",
            "legal_name": "X",
            "domain": "acme.thepia.net",
            "region": "EU",
            "tier": "pro",
            **NO_INLINE_FORMS,
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "code" in errors
    assert Client.objects.count() == 1
    assert AuditEvent.objects.filter(action="client.created").count() == 1


def test_a_downgrade_that_does_not_fit_is_refused_on_the_form(client, staff, make_client):
    acme = make_client("acme", tier="pro")
    services.configure_application(actor=None, client=acme, app_code="onboarding")
    services.configure_application(actor=None, client=acme, app_code="offboarding")
    response = client.post(
        reverse("admin:clients_client_change", args=[acme.pk]),
        {"legal_name": "Acme Ltd", "domain": "acme.thepia.net", "region": "EU", "tier": "free", **NO_INLINE_FORMS},
    )
    assert response.status_code == 200
    assert "does not fit" in str(response.context["adminform"].form.errors)
    acme.refresh_from_db()
    assert acme.tier_id == "pro"


def test_adding_an_application_in_the_admin_validates_and_audits(client, staff, make_client):
    acme = make_client("acme", tier="free")
    url = reverse("admin:clients_application_add")
    form = {"client": acme.pk, "app_code": "onboarding", "name": "Onboarding", "status": "enabled"}
    bad = client.post(url, {**form, "configuration": '{"colour": "red"}', "features": "sso"})
    assert bad.status_code == 200 and not Application.objects.exists()
    errors = str(bad.context["adminform"].form.errors)
    assert "colour" in errors or "sso" in errors
    good = client.post(url, {**form, "configuration": '{"locale": "en"}', "features": "invitations"})
    assert good.status_code == 302, good.content.decode()[:2000]
    application = Application.objects.get()
    assert application.configuration == {"locale": "en"} and application.features == ["invitations"]
    assert AuditEvent.objects.get(action="application.created").actor_label == "staff"


def test_deactivate_asks_for_confirmation_then_applies(client, staff, make_client):
    acme, globex = make_client("acme"), make_client("globex")
    url = reverse("admin:clients_client_changelist")
    form = {"action": "deactivate_selected", "_selected_action": [str(acme.pk), str(globex.pk)]}
    confirm = client.post(url, form)
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "Deactivate 2 clients?" in page and "acme" in page and "globex" in page
    assert f'<a href="{url}" class="button cancel-link">No, take me back</a>' in page  # back to the list
    one = client.get(reverse("admin:clients_client_deactivate", args=[acme.pk])).content.decode()
    change = reverse("admin:clients_client_change", args=[acme.pk])
    assert f'<a href="{change}" class="button cancel-link">No, take me back</a>' in one  # back to the client
    assert Client.objects.filter(status="deactivated").count() == 0  # nothing happens before confirming

    done = client.post(url, {**form, "confirmed": "yes", "reason": "contract ended"}, follow=True)
    assert "Deactivated 2 clients." in done.content.decode()
    assert Client.objects.filter(status="deactivated").count() == 2
    event = AuditEvent.objects.filter(action="client.deactivated").first()
    assert event.changes["reason"] == "contract ended" and event.actor_label == "staff"

    client.post(url, {"action": "reactivate_selected", "_selected_action": [str(acme.pk)], "confirmed": "yes"})
    assert Client.objects.get(pk=acme.pk).status == "active"


def test_nothing_is_deletable_and_the_audit_trail_is_read_only(client, staff, make_client):
    acme = make_client("acme")
    assert client.get(reverse("admin:clients_client_delete", args=[acme.pk])).status_code == 403
    event = AuditEvent.objects.get(action="client.created")
    assert client.get(reverse("admin:audit_auditevent_change", args=[event.pk])).status_code == 200
    assert client.post(reverse("admin:audit_auditevent_change", args=[event.pk]), {}).status_code == 403
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403


@pytest.mark.parametrize(
    "query",
    [
        "client_code=acme",
        "actor=system",
        "action=client.created",
        "occurred_at__gte=2000-01-01+00%3A00%3A00%2B00%3A00",
        "q=acme",
    ],
)
def test_the_audit_filters_work(client, staff, make_client, query):
    make_client("acme")
    make_client("globex")
    response = client.get(reverse("admin:audit_auditevent_changelist") + "?" + query)
    assert response.status_code == 200
    codes = {event.client_code for event in response.context["cl"].result_list}
    assert "acme" in codes
    if query.startswith("client_code"):
        assert codes == {"acme"}


@pytest.mark.parametrize("configuration", ["[" * 5000 + "]" * 5000, "[" * 5000, '{"workflow": ' * 50 + "1" + "}" * 50])
def test_deeply_nested_configuration_is_a_form_error_not_a_crash(client, staff, make_client, configuration):
    acme = make_client("acme")
    form = {"client": acme.pk, "app_code": "onboarding", "name": "Onboarding", "status": "enabled", "features": ""}
    response = client.post(reverse("admin:clients_application_add"), {**form, "configuration": configuration})
    assert response.status_code == 200
    assert "configuration" in response.context["adminform"].form.errors
    assert not Application.objects.exists()
