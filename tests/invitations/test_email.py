"""Invitation e-mails through a real SMTP server (aiosmtpd): sent after the commit, addresses never kept anywhere."""

from __future__ import annotations

import email
import logging
import re
from datetime import timedelta
from email import policy

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from audit.models import AuditEvent
from clients import services as client_services
from clients.configuration import configuration_errors
from config.errors import InvalidInput
from config.mail import EmlFileBackend
from invitations import services
from invitations.models import Invitation
from tests.invitations.conftest import ADA, GRACE, text_found_in_database

committed = pytest.mark.usefixtures("committed")


def parsed(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


def link_in(message) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"https://\S+#token=\S+", text).group(0)


@committed
def test_issuing_with_send_mails_the_link_to_the_company_address_after_the_commit(issue, smtp_server, caplog):
    caplog.set_level(logging.DEBUG)
    invitation, token = issue(ADA, send_to="company")

    assert invitation.delivery.status == "sent"
    [(recipients, raw)] = smtp_server.messages
    message = parsed(raw)
    assert recipients == [ADA.company_email] and message["To"] == ADA.company_email
    assert link_in(message) == f"https://acme.thepia.net/onboarding/invitation#token={token}"
    html = message.get_body(preferencelist=("html",)).get_content()
    assert f'href="https://acme.thepia.net/onboarding/invitation#token={token}"' in html
    assert "Ada Lovelace" in message.get_body(preferencelist=("plain",)).get_content()
    assert "Acme Ltd" in message["Subject"]
    assert services.validate_invitation(token=link_in(message).split("#token=")[1]) == invitation

    sent = AuditEvent.objects.get(action="invitation.sent")
    assert sent.target_id == str(invitation.pk) and sent.changes == {"sent_to": "the company address", "count": 1}
    needles = [ADA.company_email, ADA.private_email, ADA.full_name, "lovelace"]
    assert text_found_in_database(needles) == []
    assert not [needle for needle in needles if needle.lower() in caplog.text.lower()]


@committed
def test_both_addresses_and_the_private_one_alone(issue, smtp_server):
    issue(ADA, send_to="both")
    issue(GRACE.__class__("Grace Hopper", "grace.hopper@acme.example", "grace@home.example"), send_to="private")
    assert [recipients for recipients, _ in smtp_server.messages] == [
        [ADA.company_email, ADA.private_email],
        ["grace@home.example"],
    ]
    assert [
        event.changes["sent_to"] for event in AuditEvent.objects.filter(action="invitation.sent").order_by("id")
    ] == [
        "the company address and the private address",
        "the private address",
    ]


@committed
def test_sending_to_a_private_address_that_was_not_given_is_refused_before_anything(issue, smtp_server):
    with pytest.raises(InvalidInput, match="no private e-mail"):
        issue(GRACE, send_to="private")
    with pytest.raises(InvalidInput, match="Send to is one of"):
        issue(GRACE, send_to="fax")
    assert not Invitation.objects.exists() and smtp_server.messages == []


@committed
def test_a_refused_recipient_is_reported_and_audited_without_the_address(issue, smtp_server, caplog):
    caplog.set_level(logging.DEBUG)
    smtp_server.refuse = True
    invitation, token = issue(ADA, send_to="company")

    assert invitation.delivery.status == "failed"
    assert invitation.delivery.error == "SMTPRecipientsRefused 550"
    assert services.validate_invitation(token=token) == invitation  # the invitation stands
    failed = AuditEvent.objects.get(action="invitation.send_failed")
    assert failed.target_id == str(invitation.pk)
    assert failed.changes == {"sent_to": "the company address", "error": "SMTPRecipientsRefused 550", "count": 1}
    assert not AuditEvent.objects.filter(action="invitation.sent").exists()
    assert "SMTPRecipientsRefused" in caplog.text  # the failure is logged, by class …
    assert ADA.company_email not in caplog.text.lower()  # … never with the address the server quoted
    assert text_found_in_database([ADA.company_email, ADA.full_name]) == []

    smtp_server.refuse = False  # resend sends again, with the new link
    new_token = services.resend_invitation(actor=None, invitation=invitation, invitee=ADA, send_to="company")
    assert invitation.delivery.status == "sent"
    [(_, raw)] = smtp_server.messages
    assert link_in(parsed(raw)).endswith(new_token)


@committed
def test_a_server_that_is_down_is_a_failed_send_not_an_error(issue, smtp_down):
    invitation, _ = issue(ADA, send_to="company")
    assert invitation.delivery.status == "failed" and invitation.delivery.error == "ConnectionRefusedError"
    assert AuditEvent.objects.filter(action="invitation.send_failed").count() == 1
    assert Invitation.objects.filter(pk=invitation.pk, status="pending").exists()


@committed
def test_nothing_is_sent_when_the_issue_rolls_back(issue, smtp_server):
    issue(ADA)
    with pytest.raises(Exception, match="already has a pending invitation"):
        issue(ADA, send_to="company")
    assert smtp_server.messages == []


@committed
def test_the_applications_configured_subject_and_body_are_used(world, smtp_server):
    acme, _, _ = world
    configuration = {
        "branding": {"display_name": "Welcome Aboard", "primary_color": "#112233"},
        "invitation_email": {
            "subject": "{client_name}: {invitee_name}, join {application_name}",
            "body": "Hi {invitee_name}!\n\nStart here: {link}\n\nValid until {expires_at}. {unknown} stays as it is.",
        },
    }
    configuration["invitation_email"]["body"] = configuration["invitation_email"]["body"].replace(" {unknown}", "")
    application = client_services.configure_application(
        actor=None, client=acme, app_code="onboarding", configuration=configuration
    )
    invitation, token = services.issue_invitation(
        actor=None, client=acme, application=application, invitee=ADA, send_to="company", expires_in=timedelta(days=2)
    )
    message = parsed(smtp_server.messages[0][1])
    assert message["Subject"] == "Acme Ltd: Ada Lovelace, join Welcome Aboard"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert (
        text.startswith("Hi Ada Lovelace!") and token in text and f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC" in text
    )
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "#112233" in html and f'href="https://acme.thepia.net/onboarding/invitation#token={token}"' in html


def test_configured_e_mail_templates_are_validated():
    def errors(subject="Hello {invitee_name}", body="Go: {link}"):
        return configuration_errors({"invitation_email": {"subject": subject, "body": body}})

    assert errors() == []
    assert errors(subject="Hi {name}") == [
        "configuration.invitation_email.subject: unknown placeholder(s) {name}; use {invitee_name}, {client_name}, "
        "{application_name}, {link}, {expires_at}"
    ]
    assert errors(body="no link here") == [
        "configuration.invitation_email.body: must contain {link}, or the invitee cannot accept"
    ]
    assert errors(subject="Your link {link}") == [
        "configuration.invitation_email.subject: the link belongs in the body, not the subject"
    ]
    assert "must be one line" in errors(subject="two\nlines")[0]  # no header injection
    assert "up to 10,000 characters" in errors(body="{link}" + "x" * 10_000)[0]
    assert configuration_errors({"invitation_email": {"from": "x@y.example"}})  # no other keys


def test_the_development_backend_writes_one_eml_file_per_message(tmp_path, settings):
    from django.core.mail import EmailMessage

    settings.FLOWS_MAIL_DIR = tmp_path / "mail"
    sent = EmlFileBackend().send_messages([EmailMessage("One", "first", to=["a@x.example"]),
                                           EmailMessage("Two", "second", to=["b@x.example"])])  # fmt: skip
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert sent == 2 and len(files) == 2
    assert {parsed(file.read_bytes())["Subject"] for file in files} == {"One", "Two"}
    assert {file.stat().st_mode & 0o777 for file in files} == {0o600}


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("staff", "staff@thepia.net", "not-used")
    client.force_login(user)
    return user


def issue_form(world, **extra):
    acme, _, apps = world
    return {"client": str(acme.pk), "application": str(apps["acme"].pk), "full_name": ADA.full_name,
            "company_email": ADA.company_email, "private_email": ADA.private_email, "permissions": "",
            "validity_hours": "168", "max_uses": "1", **extra}  # fmt: skip


@committed
def test_the_admin_says_whether_the_mail_went_out_and_offers_a_resend(client, staff, world, smtp_server):
    url = reverse("admin:invitations_invitation_add")
    assert 'name="send_to"' in client.get(url).content.decode()
    page = client.post(url, issue_form(world, send_to="company")).content.decode()
    assert "The invitation link was e-mailed to the company address." in page
    assert len(smtp_server.messages) == 1

    smtp_server.refuse = True
    page = client.post(url, issue_form(world, send_to="company", company_email="other@acme.example")).content.decode()
    invitation = Invitation.objects.order_by("-created_at").first()
    assert "could not be sent (SMTPRecipientsRefused 550)" in page
    assert reverse("admin:invitations_invitation_resend", args=[invitation.pk]) in page
    assert "other@acme.example" not in page.replace('value="other@acme.example"', "")

    smtp_server.refuse = False
    resend = reverse("admin:invitations_invitation_resend", args=[invitation.pk])
    assert 'name="send_to"' in client.get(resend).content.decode()
    form = {"full_name": "Other", "company_email": "other@acme.example", "validity_hours": "24", "send_to": "company"}
    page = client.post(resend, form).content.decode()
    assert "The invitation link was e-mailed to the company address." in page and len(smtp_server.messages) == 2
