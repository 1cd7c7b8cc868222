"""The client page as a hub: status banner, usage, related rows, and the buttons each role may use (and no other)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from clients import services
from clients.models import Client
from invitations.models import Invitation
from invitations.services import Invitee, issue_invitation, revoke_invitation
from staff import services as staff_services
from staff.elevation import SESSION_KEY
from vault.models import DataKey, Secret
from vault.services import rotate_signing_key, set_secret

pytestmark = pytest.mark.django_db(databases="__all__")


def hub_url(client_row: Client) -> str:
    return reverse("admin:clients_client_change", args=[client_row.pk])


def sign_in(browser, username: str, role: str | None, clients=(), *, elevated: bool = False) -> User:
    """A staff user of `role` (None: a superuser) granted `clients`, signed in; `elevated`: re-authenticated."""
    if role is None:
        user = User.objects.create_superuser(username, f"{username}@thepia.net", "not-used")
    else:
        user = staff_services.create_staff_user(
            actor=None, username=username, email=f"{username}@thepia.net", role=role
        )
        for client_row in clients:
            staff_services.grant_client_access(actor=None, user=user, client=client_row)
    browser.force_login(user)
    if elevated:
        session = browser.session
        session[SESSION_KEY] = (timezone.now() + timedelta(minutes=5)).isoformat()
        session.save()
    return user


@pytest.fixture
def acme(make_client):
    rotate_signing_key(actor=None)
    acme = make_client("acme", tier="pro")
    onboarding = services.configure_application(actor=None, client=acme, app_code="onboarding")
    services.create_api_key(actor=None, client=acme, name="prod", scopes=["configuration:read"])
    set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="v" * 20)
    issue_invitation(actor=None, client=acme, application=onboarding, invitee=Invitee("Ada", "ada@acme.example"))
    return acme


BUTTONS = {
    "issue": "Issue invitation",
    "add_application": "Add application",
    "add_secret": "Add secret",
    "add_api_key": "Create API key",
    "deactivate": "Deactivate…",
    "rotate": "Rotate data key…",
    "erase": "Erase…",
}


def buttons_on(page: str) -> set[str]:
    return {name for name, label in BUTTONS.items() if label in page}


def test_the_hub_shows_status_usage_related_rows_and_every_button_to_a_platform_admin(client, acme):
    sign_in(client, "root", None)
    page = client.get(hub_url(acme)).content.decode()
    assert "console-banner active" in page and "Active</strong> on tier Pro" in page
    assert "1 of 5" in page and "1 of 1,000" in page and "10 GB allowed" in page  # applications, seats, storage
    assert "INV-" in page and "slack-api_key" in page and "set (data key v1)" in page  # invitations, secrets
    assert Secret.objects.get().ciphertext.hex() not in page
    assert "prod" in page and "no requests" in page  # API keys and their usage (counters: test_hub_usage.py)
    assert "client.created" in page and f"?client={acme.code}" in page  # latest events and the full trail
    assert buttons_on(page) == set(BUTTONS)
    assert f"{reverse('admin:invitations_invitation_add')}?client={acme.pk}" in page
    assert f"{reverse('admin:vault_secret_add')}?client={acme.pk}" in page
    # The links go to pages that open, pre-filled or filtered.
    issue_page = client.get(f"{reverse('admin:invitations_invitation_add')}?client={acme.pk}").content.decode()
    assert f'<option value="{acme.pk}" selected>' in issue_page
    listed = client.get(f"{reverse('admin:invitations_invitation_changelist')}?client__id__exact={acme.pk}")
    assert listed.status_code == 200 and Invitation.objects.get().code in listed.content.decode()
    trail = client.get(f"{reverse('admin:audit_auditevent_changelist')}?client={acme.code}")
    assert trail.status_code == 200 and "client.created" in trail.content.decode()


@pytest.mark.parametrize(
    ("role", "offered"),
    [
        ("Client manager", {"issue", "add_application", "add_api_key", "deactivate"}),
        ("Support", set()),
        ("Security officer", {"rotate", "erase"}),
        ("Auditor", set()),
    ],
)
def test_each_role_sees_only_the_buttons_it_may_use(client, acme, role, offered):
    sign_in(client, "someone", role, [acme])
    page = client.get(hub_url(acme)).content.decode()
    assert buttons_on(page) == offered
    # Sections follow the view permissions: Support sees no secrets, the others see them (metadata only).
    assert ("slack-api_key" in page) == (role in ("Security officer", "Auditor"))
    assert ("Latest audit events" in page) == (role == "Auditor")  # the Security officer has no audit view


@pytest.mark.parametrize(
    ("role", "url_name"),
    [
        ("Support", "admin:clients_client_deactivate"),
        ("Support", "admin:clients_client_reactivate"),
        ("Client manager", "admin:clients_client_rotate"),
        ("Client manager", "admin:clients_client_erase"),
        ("Security officer", "admin:clients_client_deactivate"),
    ],
)
def test_a_button_url_without_the_permission_is_a_styled_403_and_changes_nothing(client, acme, role, url_name):
    sign_in(client, "someone", role, [acme], elevated=True)
    url = reverse(url_name, args=[acme.pk])
    for response in (client.get(url), client.post(url, {"reason": "x", "confirm": "acme"})):
        page = response.content.decode()
        assert response.status_code == 403
        assert "You may not open this page" in page and "console/console.css" in page and "Log out" in page
    acme.refresh_from_db()
    assert acme.status == "active" and DataKey.objects.filter(client=acme).count() == 1


def test_a_client_the_user_may_not_see_answers_404_on_every_button(client, acme, make_client):
    globex = make_client("globex")
    sign_in(client, "manager", "Client manager", [acme])
    for name in ("change", "deactivate", "reactivate", "rotate", "erase"):
        response = client.get(reverse(f"admin:clients_client_{name}", args=[globex.pk]))
        assert response.status_code == 404
        assert "There is no such page" in response.content.decode()


def test_deactivate_from_the_hub_asks_a_reason_then_the_banner_says_who_when_and_why(client, acme):
    sign_in(client, "manager", "Client manager", [acme])
    url = reverse("admin:clients_client_deactivate", args=[acme.pk])
    assert "Reason" in client.get(url).content.decode()
    done = client.post(url, {"reason": "contract ended"}, follow=True)
    page = done.content.decode()
    assert done.redirect_chain[-1][0] == hub_url(acme)
    assert "Client acme is deactivated." in page
    assert "console-banner deactivated" in page and "contract ended" in page and "by manager" in page
    assert "Reactivate…" in page and buttons_on(page) == set()  # nothing is added to a deactivated client
    # The banner on a page of one of its rows too.
    application = acme.applications.get()
    app_page = client.get(reverse("admin:clients_application_change", args=[application.pk])).content.decode()
    assert "console-banner deactivated" in app_page and "contract ended" in app_page
    # Reactivation, with its reason in the trail.
    client.post(reverse("admin:clients_client_reactivate", args=[acme.pk]), {"reason": "renewed"})
    acme.refresh_from_db()
    assert acme.status == "active"
    assert AuditEvent.objects.get(action="client.reactivated").changes["reason"] == "renewed"


def test_rotating_the_data_key_from_the_hub_needs_a_recent_re_authentication(client, acme):
    sign_in(client, "officer", "Security officer", [acme])
    url = reverse("admin:clients_client_rotate", args=[acme.pk])
    assert client.post(url).status_code == 302 and DataKey.objects.filter(client=acme).count() == 1
    session = client.session
    session[SESSION_KEY] = (timezone.now() + timedelta(minutes=5)).isoformat()
    session.save()
    done = client.post(url, follow=True)
    assert "Client acme has a new data key." in done.content.decode()
    assert DataKey.objects.filter(client=acme).count() == 2


def test_erasure_from_the_hub_then_the_client_reads_as_erased_everywhere(client, acme):
    sign_in(client, "officer", "Security officer", [acme], elevated=True)
    url = reverse("admin:clients_client_erase", args=[acme.pk])
    wrong = client.post(url, {"confirm": "acne"}).content.decode()
    assert "Type acme to confirm" in wrong or "repeating the client&#x27;s code" in wrong
    assert 'value="acne"' in wrong  # the typed text is kept
    assert not DataKey.objects.filter(client=acme, status="destroyed").exists()
    page = client.post(url, {"confirm": "acme"}, follow=True).content.decode()
    assert "console-banner erased" in page and "unrecoverable" in page
    assert "Deactivated" not in page and "set (data key" not in page
    assert "unrecoverable (client erased)" in page
    assert buttons_on(page) == set()  # nothing more to do with an erased client; no reveal anywhere
    secret = Secret.objects.get()
    secret_page = client.get(reverse("admin:vault_secret_change", args=[secret.pk])).content.decode()
    assert "unrecoverable (client erased)" in secret_page and "Reveal the value" not in secret_page
    assert "console-banner erased" in secret_page
    reveal = client.get(reverse("admin:vault_secret_reveal", args=[secret.pk]), follow=True)
    assert "this value is unrecoverable" in reveal.content.decode()
    assert "Reason (required)" not in reveal.content.decode()
    secret_list = client.get(reverse("admin:vault_secret_changelist")).content.decode()
    assert "unrecoverable (client erased)" in secret_list and "set (data key" not in secret_list
    client_list = client.get(reverse("admin:clients_client_changelist") + "?state=erased").content.decode()
    assert "Erased" in client_list and "acme" in client_list
    assert "acme" not in client.get(reverse("admin:clients_client_changelist") + "?state=deactivated").content.decode()


def _grow(acme, indexes: range) -> None:
    """Applications, API keys, secrets and invitations: one more of each per index."""
    onboarding = acme.applications.get(app_code="onboarding")
    for index in indexes:
        services.configure_application(actor=None, client=acme, app_code=f"app{index}")
        services.create_api_key(actor=None, client=acme, name=f"key{index}", scopes=["configuration:read"])
        set_secret(actor=None, client=acme, provider=f"p{index}", secret_type="api_key", value="v" * 20)
        issue_invitation(
            actor=None, client=acme, application=onboarding, invitee=Invitee("Ada", f"ada{index}@acme.example")
        )


def _hub_queries(client, acme) -> int:
    client.get(hub_url(acme))  # warm the per-process caches
    with CaptureQueriesContext(connections[settings.CONSOLE_DB_ALIAS]) as queries:
        response = client.get(hub_url(acme))
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("role", [None, "Security officer", "Client manager"])
def test_the_hub_costs_the_same_queries_whatever_the_number_of_related_rows(client, make_client, role):
    rotate_signing_key(actor=None)
    acme = make_client("acme", tier="enterprise")
    services.configure_application(actor=None, client=acme, app_code="onboarding")
    sign_in(client, "someone", role, [acme])
    _grow(acme, range(1))
    few = _hub_queries(client, acme)
    _grow(acme, range(1, 14))  # past the 10 rows a list shows
    assert _hub_queries(client, acme) == few


def test_a_deactivated_client_costs_the_same_queries_too(client, acme):
    sign_in(client, "root", None)
    services.deactivate_client(actor=None, client=acme, reason="paused")
    few = _hub_queries(client, acme)
    services.reactivate_client(actor=None, client=acme)
    for index in range(12):
        set_secret(actor=None, client=acme, provider=f"p{index}", secret_type="api_key", value="v" * 20)
    services.deactivate_client(actor=None, client=acme, reason="paused again")
    assert _hub_queries(client, acme) == few


def test_the_hub_shows_this_and_last_months_figures(client, acme):
    sign_in(client, "root", None)
    onboarding = acme.applications.get(app_code="onboarding")
    second, _ = issue_invitation(
        actor=None, client=acme, application=onboarding, invitee=Invitee("Bo", "bo@acme.example")
    )
    revoke_invitation(actor=None, invitation=second, reason="sent twice")
    page = client.get(hub_url(acme)).content.decode()
    section = page[page.index('id="analytics"') :]
    this_month = f"{timezone.now():%Y-%m}"
    row = section[section.index(this_month) : section.index("</tr>", section.index(this_month))]
    cells = [cell.split(">")[-1].strip() for cell in row.split("</td>")[:-1]]
    # acme's fixture issued one, this test one more and revoked it: 2 issued, 1 revoked, none redeemed.
    assert cells[:5] == ["2", "0", "0", "1", "0 %"], cells
    assert "client_analytics acme" in section


def test_an_erased_clients_page_is_read_only(client, acme):
    sign_in(client, "root", None)
    services.erase_client(actor=None, client=acme, confirm="acme")
    page = client.get(hub_url(acme)).content.decode()
    assert 'name="_save"' not in page and 'name="legal_name"' not in page
    assert "Erased" in page
    refused = client.post(hub_url(acme), {"legal_name": "Renamed", "domain": "acme.example", "region": "EU",
                                          "tier": "pro"})  # fmt: skip
    assert refused.status_code == 403
    acme.refresh_from_db()
    assert acme.legal_name != "Renamed"
