"""The console's pages as people meet them: refusals keep the input, dropdowns name the client, error pages,
plurals, dates, copy buttons without inline script, the configuration box (issue 12's walk, and its siblings)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from django.views.defaults import server_error

from clients import services
from clients.models import Application
from invitations.models import Invitation
from invitations.services import Invitee, issue_invitation
from invitations.tokens import invitation_link, token_from_link
from staff import services as staff_services
from staff.elevation import SESSION_KEY
from vault.services import rotate_signing_key, set_secret

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def root(client):
    user = User.objects.create_superuser("root", "root@thepia.net", "not-used")
    client.force_login(user)
    session = client.session
    session[SESSION_KEY] = (timezone.now() + timedelta(minutes=5)).isoformat()
    session.save()
    return user


def as_role(client, role: str, clients=(), username: str = "someone") -> User:
    user = staff_services.create_staff_user(actor=None, username=username, email=f"{username}@thepia.net", role=role)
    for client_row in clients:
        staff_services.grant_client_access(actor=None, user=user, client=client_row)
    client.force_login(user)
    return user


@pytest.fixture
def two_clients(make_client):
    """acme and globex, each with an onboarding application (the four identical "Onboarding" of the walk)."""
    rotate_signing_key(actor=None)
    acme, globex = make_client("acme", tier="free"), make_client("globex")
    for row in (acme, globex):
        services.configure_application(actor=None, client=row, app_code="onboarding")
    return acme, globex


def scripts_are_files_only(page: str) -> bool:
    """The CSP allows no inline script: no handler attributes, no <script> without src."""
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    handlers = re.findall(r"\son[a-z]+=", page)
    return not inline and not handlers


# (a) A refusal keeps the input and shows the reason in place.


def test_a_tier_limit_refusal_keeps_everything_typed_on_the_application_form(client, root, two_clients):
    acme, _ = two_clients  # free tier: one application, already used
    form = {
        "client": acme.pk,
        "app_code": "offboarding",
        "name": "Typed Offboarding Name",
        "configuration": '{"locale": "en-GB"}',
        "status": "enabled",
    }
    response = client.post(reverse("admin:clients_application_add"), form)
    page = response.content.decode()
    assert response.status_code == 200  # the form again, not a redirect to an empty one
    assert "allows 1 application;" in page and "has reached the limit" in page
    assert 'value="Typed Offboarding Name"' in page and 'value="offboarding"' in page and "en-GB" in page
    assert not Application.objects.filter(app_code="offboarding").exists()


def test_revoking_without_a_reason_stays_on_the_confirmation_with_the_reason_asked(client, root, two_clients):
    acme, _ = two_clients
    invitation, _ = issue_invitation(
        actor=None, client=acme, application=acme.applications.get(), invitee=Invitee("Ada", "ada@acme.example")
    )
    form = {"action": "revoke_selected", "_selected_action": [str(invitation.pk)], "confirmed": "yes", "reason": " "}
    response = client.post(reverse("admin:invitations_invitation_changelist"), form)
    page = response.content.decode()
    assert response.status_code == 200 and "Say why the invitation is revoked." in page
    assert "Revoke 1 invitation?" in page and 'class="errorlist"' in page
    # From the invitation's own page: the same, and the reason typed stays after another refusal.
    url = reverse("admin:invitations_invitation_revoke", args=[invitation.pk])
    assert "Say why" in client.post(url, {"reason": ""}).content.decode()
    invitation.refresh_from_db()
    assert invitation.status == "pending"
    done = client.post(url, {"reason": "sent to the wrong person"}, follow=True)
    assert f"Invitation {invitation.code} is revoked." in done.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == "revoked" and invitation.revoke_reason == "sent to the wrong person"


# (b) Dropdowns narrowed to the chosen client, labelled with it, and checked server-side.


def test_the_issue_form_offers_only_the_chosen_clients_applications(client, root, two_clients):
    acme, globex = two_clients
    url = reverse("admin:invitations_invitation_add")
    everyone = client.get(url).content.decode()
    assert "acme / Onboarding (onboarding)" in everyone and "globex / Onboarding (onboarding)" in everyone
    narrowed = client.get(f"{url}?client={acme.pk}").content.decode()
    assert "acme / Onboarding (onboarding)" in narrowed and "globex /" not in narrowed
    mixed = {"client": acme.pk, "application": globex.applications.get().pk, "full_name": "Ada",
             "company_email": "ada@acme.example", "validity_hours": 24, "max_uses": 1}  # fmt: skip
    page = client.post(url, mixed).content.decode()
    assert "This application belongs to another client: choose one of acme" in page
    assert "globex /" not in page  # the dropdown shown again is still the chosen client's
    assert not Invitation.objects.exists()


def test_the_api_key_form_names_each_application_with_its_client_and_narrows(client, root, two_clients):
    acme, globex = two_clients
    url = reverse("admin:clients_apikey_add")
    page = client.get(url).content.decode()
    assert page.count("Onboarding (onboarding)") == 2 and "acme / Onboarding" in page and "globex / Onboarding" in page
    assert "globex /" not in client.get(f"{url}?client={acme.pk}").content.decode()
    form = {"client": acme.pk, "application": globex.applications.get().pk, "name": "x"}
    form["scopes"] = ["configuration:read"]
    assert "belongs to another client" in client.post(url, form).content.decode()
    assert not acme.api_keys.exists()


# (c) The invitation pages: styled forms, links accepted by "Check a token", revoke on the page.


def test_issue_and_resend_forms_have_the_admin_styles(client, root, two_clients):
    acme, _ = two_clients
    invitation, _ = issue_invitation(
        actor=None, client=acme, application=acme.applications.get(), invitee=Invitee("Ada", "ada@acme.example")
    )
    for url in (
        reverse("admin:invitations_invitation_add"),
        reverse("admin:invitations_invitation_resend", args=[invitation.pk]),
    ):
        page = client.get(url).content.decode()
        assert "admin/css/forms.css" in page and 'class="required"' in page and 'class="vTextField"' in page
        assert 'class="submit-row"' in page


@pytest.mark.parametrize(
    "shape",
    [
        "{link}",
        "  {link}\n",
        "<{link}>",
        "{link}&utm_source=mail",
        "https://acme.example/onboarding/invitation?token={token}",
        "https://acme.example/onboarding/invitation/{token}",
        "{token}",
    ],
)
def test_check_a_token_accepts_the_invitation_link_people_forward(client, root, two_clients, shape):
    acme, _ = two_clients
    invitation, token = issue_invitation(
        actor=None, client=acme, application=acme.applications.get(), invitee=Invitee("Ada", "ada@acme.example")
    )
    link = invitation_link(acme, acme.applications.get(), token)
    pasted = shape.format(link=link, token=token)
    assert token_from_link(pasted) == token
    page = client.post(reverse("admin:invitations_invitation_check"), {"token": pasted}).content.decode()
    assert "Valid: <a href=" in page and invitation.code in page and "1 use left" in page


@pytest.mark.parametrize("text", ["", "not a token", "https://acme.example/#token=", "http://[broken", "a.b#c"])
def test_a_link_without_a_token_is_returned_for_the_checks_to_reject(text):
    assert token_from_link(text) == "".join(text.split()).strip("<>\"'")


def test_revoke_and_resend_are_offered_on_an_invitations_page_to_those_who_may(client, two_clients):
    acme, _ = two_clients
    invitation, _ = issue_invitation(
        actor=None, client=acme, application=acme.applications.get(), invitee=Invitee("Ada", "ada@acme.example")
    )
    url = reverse("admin:invitations_invitation_change", args=[invitation.pk])
    as_role(client, "Client manager", [acme])
    page = client.get(url).content.decode()
    assert reverse("admin:invitations_invitation_revoke", args=[invitation.pk]) in page and "Revoke…" in page
    assert "Resend with a new token…" in page
    as_role(client, "Support", [acme], username="support")
    page = client.get(url).content.decode()
    assert "Revoke…" not in page and "Resend with a new token…" in page
    assert client.get(reverse("admin:invitations_invitation_revoke", args=[invitation.pk])).status_code == 403


# (d) The secret pages, and copy buttons without inline script.


def test_the_secret_form_help_is_readable_and_value_appears_once(client, root, two_clients):
    acme, _ = two_clients
    add = client.get(reverse("admin:vault_secret_add")).content.decode()
    assert "stripe-api_key" in add and "default -." not in add
    secret = set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="v" * 20)
    page = client.get(reverse("admin:vault_secret_change", args=[secret.pk])).content.decode()
    labels = re.findall(r"<label[^>]*>([^<]*)</label>", page)
    assert [label for label in labels if "alue" in label] == ["New value:", "Stored value:"]


def test_a_view_only_user_sees_the_stored_value_state_once_and_never_none(client, two_clients):
    acme, _ = two_clients
    secret = set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="v" * 20)
    as_role(client, "Auditor")
    page = client.get(reverse("admin:vault_secret_change", args=[secret.pk])).content.decode()
    assert "set (data key v1)" in page and "New value" not in page
    assert not re.search(r"Value:\s*</label>\s*<div class=\"readonly\">None", page)
    assert page.count("alue:</label>") == 1


def test_revealed_values_new_keys_and_links_have_a_copy_button_and_no_inline_script(client, root, two_clients):
    acme, _ = two_clients
    secret = set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="s3cr3t-value")
    reveal_url = reverse("admin:vault_secret_reveal", args=[secret.pk])
    nonce = client.get(reveal_url).context["nonce"]  # the reveal form's one-time nonce (post/redirect/get)
    revealed = client.post(reveal_url, {"reason": "support ticket", "nonce": nonce})
    created = client.post(
        reverse("admin:clients_apikey_add"), {"client": acme.pk, "name": "ci", "scopes": ["configuration:read"]}
    )
    issued = client.post(
        reverse("admin:invitations_invitation_add"),
        {"client": acme.pk, "application": acme.applications.get().pk, "full_name": "Ada",
         "company_email": "ada@acme.example", "validity_hours": 24, "max_uses": 1},
    )  # fmt: skip
    for response, target in ((revealed, "secret-value"), (created, "api-key"), (issued, "invitation-link")):
        page = response.content.decode()
        assert f'data-copy="{target}"' in page and "console/console.js" in page
        assert scripts_are_files_only(page)
    assert "s3cr3t-value" in revealed.content.decode()


def test_the_console_script_is_served_as_a_static_file(client):
    script = finders.find("console/console.js")
    assert script and "data-copy" in Path(script).read_text()
    assert finders.find("console/console.css")


# (e) Error pages, "View site", plurals, dates.


def test_a_page_the_user_may_not_see_is_a_styled_403(client, two_clients):
    acme, _ = two_clients
    as_role(client, "Support", [acme])
    for url in (reverse("admin:vault_secret_changelist"), reverse("admin:invitations_invitation_add")):
        response = client.get(url)
        page = response.content.decode()
        assert response.status_code == 403
        assert "You may not open this page" in page and "Flows Console" in page and "admin/css/base.css" in page
        assert "Log out" in page  # the signed-in user's links, as on every console page


def test_an_unknown_page_is_a_styled_404(client, root):
    response = client.get("/admin/clients/client/00000000-0000-0000-0000-000000000000/change/")
    assert response.status_code in (302, 404)
    response = client.get("/admin/no-such-page/", follow=True)
    page = response.content.decode()
    assert response.status_code == 404 and "There is no such page" in page and "admin/css/base.css" in page


def test_a_form_sent_without_its_csrf_token_is_a_console_page(root):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(root)
    response = browser.post(reverse("admin:clients_client_add"), {"code": "acme"})
    page = response.content.decode()
    assert response.status_code == 403 and "This form could not be accepted" in page and "Log out" in page


def test_a_server_error_is_a_console_page_that_needs_neither_request_nor_database():
    response = server_error(RequestFactory().get("/admin/"))
    page = response.content.decode()
    assert response.status_code == 500 and "Something went wrong on our side" in page and "admin/css/base.css" in page


def test_there_is_no_view_site_link(client, root):
    page = client.get(reverse("admin:index")).content.decode()
    assert "View site" not in page and "Log out" in page


def test_counts_are_said_in_the_singular_when_there_is_one(client, root, two_clients):
    acme, _ = two_clients
    url = reverse("admin:clients_client_changelist")
    form = {"action": "deactivate_selected", "_selected_action": [str(acme.pk)]}
    assert "Deactivate 1 client?" in client.post(url, form).content.decode()
    done = client.post(url, {**form, "confirmed": "yes", "reason": "paused"}, follow=True).content.decode()
    assert "Deactivated 1 client." in done and "1 clients" not in done


def test_dates_read_as_iso_without_a_doubled_period(client, root, two_clients):
    acme, _ = two_clients
    invitation, _ = issue_invitation(
        actor=None, client=acme, application=acme.applications.get(), invitee=Invitee("Ada", "ada@acme.example")
    )
    pages = [
        client.get(reverse("admin:invitations_invitation_change", args=[invitation.pk])).content.decode(),
        client.get(reverse("admin:invitations_invitation_changelist")).content.decode(),
        client.get(reverse("admin:clients_client_change", args=[acme.pk])).content.decode(),
    ]
    for page in pages:
        assert "p.m." not in page and "a.m." not in page
        assert invitation.expires_at.strftime("%Y-%m-%d %H:%M") in page


def test_list_tables_cut_long_values_instead_of_scrolling(client, root, two_clients):
    """The rule that keeps lists within 1366 px (checked by eye and by the browser suite): linked on every list."""
    page = client.get(reverse("admin:clients_client_changelist")).content.decode()
    assert "console/console.css" in page
    css = Path(finders.find("console/console.css")).read_text()
    assert "table-layout: fixed" in css and "text-overflow: ellipsis" in css


# (f) The configuration box.


def test_the_configuration_is_an_indented_multi_line_box_with_the_allowed_keys(client, root, two_clients):
    acme, _ = two_clients
    configuration = {"locale": "en-GB", "branding": {"primary_color": "#0a7cff"}}
    application = services.configure_application(
        actor=None, client=acme, app_code="onboarding", configuration=configuration
    )
    page = client.get(reverse("admin:clients_application_change", args=[application.pk])).content.decode()
    box = re.search(r'<textarea name="configuration"[^>]*>(.*?)</textarea>', page, re.S)
    assert box and 'class="console-code"' in box.group(0)
    assert "\n  &quot;branding&quot;: {\n    &quot;primary_color&quot;" in box.group(1)
    assert "docs/applications.md" not in page
    for key in ("locale", "branding.primary_color", "notifications.reminder_days", "webhook_url"):
        assert f"<code>{key}</code>" in page
    # The tier's features, where they are chosen: checkboxes of the free tier's features only.
    assert 'value="invitations"' in page and 'value="basic_branding"' in page and 'value="sso"' not in page
    assert "Tier Free of acme allows: invitations, basic_branding." in page


@pytest.mark.parametrize(
    "case",
    [
        ('{"branding": {"primary_color": "blue"}}', "configuration.branding.primary_color: must be a colour", "blue"),
        ('{"colour": "red"}', "unknown key colour; the keys allowed here are locale", '"colour": "red"'),
        ('{"locale": 7}', "configuration.locale: must be a text in quotes, not a whole number", '"locale": 7'),
        ('{"notifications": {"reminder_days": [0]}}', "each 1 to 90", "reminder_days"),
        ('{"locale": "en",\n "timezone": }', "Not valid JSON: Expecting value at line 2, column 14.", '"timezone": }'),
    ],
)
def test_configuration_errors_name_the_path_in_peoples_words(client, root, two_clients, case):
    """`case`: what is typed, the error expected, and a part of what was typed that the box must show again."""
    configuration, message, kept = case
    acme, _ = two_clients
    application = acme.applications.get()
    form = {"name": "Onboarding", "configuration": configuration, "status": "enabled"}
    response = client.post(reverse("admin:clients_application_change", args=[application.pk]), form)
    page = response.content.decode().replace("&#x27;", "'").replace("&quot;", '"')
    assert response.status_code == 200 and message in page
    assert "does not match" not in page and "^#[0-9a-fA-F]{6}$" not in page
    box = re.search(r'<textarea name="configuration"[^>]*>(.*?)</textarea>', page, re.S)
    assert kept in box.group(1)  # what was typed stays in the box
    application.refresh_from_db()
    assert application.configuration == {}


# (g) The banner on the pages of a deactivated client's rows.


def test_a_deactivated_clients_rows_show_the_banner_with_the_reason(client, root, two_clients):
    acme, _ = two_clients
    api_key, _ = services.create_api_key(actor=None, client=acme, name="prod", scopes=["configuration:read"])
    secret = set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="v" * 20)
    invitation, _ = issue_invitation(
        actor=None, client=acme, application=acme.applications.get(), invitee=Invitee("Ada", "ada@acme.example")
    )
    services.deactivate_client(actor=None, client=acme, reason="unpaid invoices")
    for url in (
        reverse("admin:clients_client_change", args=[acme.pk]),
        reverse("admin:clients_application_change", args=[acme.applications.get().pk]),
        reverse("admin:clients_apikey_change", args=[api_key.pk]),
        reverse("admin:vault_secret_change", args=[secret.pk]),
        reverse("admin:invitations_invitation_change", args=[invitation.pk]),
    ):
        page = client.get(url).content.decode()
        assert "console-banner deactivated" in page and "unpaid invoices" in page, url
    globex_page = client.get(reverse("admin:clients_client_change", args=[two_clients[1].pk])).content.decode()
    assert "console-banner active" in globex_page and "unpaid invoices" not in globex_page


def test_an_api_key_is_revoked_from_its_own_page_by_those_who_may(client, two_clients):
    acme, _ = two_clients
    api_key, _ = services.create_api_key(actor=None, client=acme, name="prod", scopes=["configuration:read"])
    page_url = reverse("admin:clients_apikey_change", args=[api_key.pk])
    revoke_url = reverse("admin:clients_apikey_revoke", args=[api_key.pk])
    as_role(client, "Support", [acme], username="support")
    assert revoke_url not in client.get(page_url).content.decode()
    assert client.post(revoke_url).status_code == 403
    as_role(client, "Client manager", [acme], username="manager")
    assert revoke_url in client.get(page_url).content.decode()
    assert "Revoke prod" in client.get(revoke_url).content.decode()
    done = client.post(revoke_url, follow=True).content.decode()
    assert f"API key {api_key.prefix} is revoked." in done and revoke_url not in done
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
