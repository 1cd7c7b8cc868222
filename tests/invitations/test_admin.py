"""Invitations in the staff console: issue shows the link once, lists carry no personal data, checks explain."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from audit.models import AuditEvent
from invitations import services
from invitations.models import Invitation
from tests.clients.test_admin import changelist_queries
from tests.invitations.conftest import ADA
from tests.invitations.test_tokens import claims_of, resign

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("staff", "staff@thepia.net", "not-used")
    client.force_login(user)
    return user


def issue_form(world, **extra):
    acme, _, apps = world
    return {"client": str(acme.pk), "application": str(apps["acme"].pk), "full_name": ADA.full_name,
            "company_email": ADA.company_email, "private_email": ADA.private_email, "permissions": "manager",
            "validity_hours": "168", "max_uses": "1", **extra}  # fmt: skip


def test_issuing_shows_the_link_once_and_nowhere_else(client, staff, world):
    url = reverse("admin:invitations_invitation_add")
    assert "Issue invitation" in client.get(url).content.decode()
    issued = client.post(url, issue_form(world))
    page = issued.content.decode()
    token = re.search(r'id="invitation-token"[^>]*>([^<]+)<', page).group(1)
    assert "https://acme.thepia.net/onboarding/invitation#token=" in page and "Copy link" in page
    assert "no-store" in issued["Cache-Control"]
    invitation = Invitation.objects.get()
    assert services.validate_invitation(token=token) == invitation

    later = [
        client.get(reverse("admin:invitations_invitation_changelist")),
        client.get(reverse("admin:invitations_invitation_change", args=[invitation.pk])),
        client.get(reverse("admin:audit_auditevent_changelist")),
        client.get(reverse("admin:clients_client_change", args=[invitation.client_id])),
    ]
    for response in later:
        text = response.content.decode()
        assert response.status_code == 200 and token not in text
        assert ADA.full_name not in text and ADA.company_email not in text
    assert invitation.code in later[3].content.decode() and "1 of 1,000" in later[3].content.decode()
    assert AuditEvent.objects.get(action="invitation.issued").actor_label == "staff"


def test_bad_input_on_the_issue_page_is_shown_and_changes_nothing(client, staff, world):
    url = reverse("admin:invitations_invitation_add")
    bad_email = client.post(url, issue_form(world, company_email="not-an-email")).content.decode()
    assert "Enter a valid email address." in bad_email
    other_app = issue_form(world, application=str(world[2]["globex"].pk))
    assert "belongs to another client" in client.post(url, other_app).content.decode()
    assert not Invitation.objects.exists()


def test_staff_without_the_issue_permission_cannot_issue(client, world):
    user = User.objects.create_user("support", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:invitations_invitation_add")).status_code == 403


def test_revoke_asks_for_confirmation_and_a_reason(client, staff, issue):
    invitation, _ = issue()
    url = reverse("admin:invitations_invitation_changelist")
    form = {"action": "revoke_selected", "_selected_action": [str(invitation.pk)]}
    assert "Revoke 1 invitation?" in client.post(url, form).content.decode()
    assert Invitation.objects.get().status == "pending"
    client.post(url, {**form, "confirmed": "yes", "reason": "wrong address"})
    invitation.refresh_from_db()
    assert (invitation.status, invitation.revoke_reason, invitation.revoked_by) == ("revoked", "wrong address", "staff")


def test_resend_page_issues_a_new_token_for_the_same_invitee(client, staff, issue):
    invitation, old_token = issue()
    url = reverse("admin:invitations_invitation_resend", args=[invitation.pk])
    assert "was never stored" in client.get(url).content.decode()
    form = {"full_name": ADA.full_name, "company_email": "someone.else@acme.example", "validity_hours": "24"}
    assert "Not the invited address." in client.post(url, form).content.decode()
    page = client.post(url, {**form, "company_email": ADA.company_email}).content.decode()
    new_token = re.search(r'id="invitation-token"[^>]*>([^<]+)<', page).group(1)
    assert new_token != old_token and services.validate_invitation(token=new_token).resend_count == 1


def test_the_check_page_gives_every_verdict(client, staff, issue):
    invitation, token = issue()
    url = reverse("admin:invitations_invitation_check")
    good = client.post(url, {"token": token}).content.decode()
    assert good.count("> pass") == 16 and invitation.code in good and ADA.full_name not in good
    services.revoke_invitation(actor=None, invitation=invitation, reason="test")
    revoked = client.post(url, {"token": token}).content.decode()
    assert revoked.count("> pass") == 13 and "revoked: The invitation was revoked." in revoked
    assert "not checked" in revoked
    garbage = client.post(url, {"token": "not a token"}).content.decode()
    assert garbage.count("> pass") == 0 and "malformed_token" in garbage
    hostile = resign({**claims_of(token), "client": "a\x00b"})
    behind_the_signature = client.post(url, {"token": hostile}).content.decode()
    assert behind_the_signature.count("> pass") == 8 and "malformed_token" in behind_the_signature


def test_invitation_changelist_queries_do_not_grow_with_rows(client, staff, issue):
    for n in range(2):
        issue(services.Invitee("P", f"p{n}@acme.example"))
    few = changelist_queries(client, reverse("admin:invitations_invitation_changelist"))
    for n in range(2, 9):
        issue(services.Invitee("P", f"p{n}@acme.example"))
    assert changelist_queries(client, reverse("admin:invitations_invitation_changelist")) == few
