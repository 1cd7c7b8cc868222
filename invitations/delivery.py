"""Invitation e-mails: built from the application's templates, sent after the issue commits, the outcome audited.

The invitee's addresses exist here only in memory, for the send: they are in no column, no log
line and no audit event — the trail says which address ("the company address"), never what it
is. An SMTP error's text often quotes the refused address, so only its class and numeric code
are kept.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import router, transaction
from django.template.loader import render_to_string

from audit.services import record
from clients.configuration import fill_placeholders
from invitations.models import Invitation

log = logging.getLogger(__name__)

SEND_TO_CHOICES = {
    "none": "Do not send (copy the link yourself)",
    "company": "The company e-mail",
    "private": "The private e-mail",
    "both": "Both e-mails",
}
ADDRESS_LABELS = {"company": "the company address", "private": "the private address"}
DEFAULT_SUBJECT = "Your invitation to {application_name} at {client_name}"
DEFAULT_BODY = (
    "Hello {invitee_name},\n\n"
    "{client_name} invites you to {application_name}. Open this link to accept:\n\n"
    "{link}\n\n"
    "The invitation is personal and expires on {expires_at}."
)


@dataclass
class Delivery:
    """The outcome of sending one invitation's e-mail (or a batch's): filled in after the transaction commits."""

    send_to: str
    status: str = "scheduled"  # "scheduled" (the transaction has not committed yet), "sent" or "failed"
    sent: int = 0
    failed: list[str] = field(default_factory=list)  # invitation codes
    error: str = ""  # the error's class and SMTP code, never its text

    @property
    def to_label(self) -> str:
        return " and ".join(ADDRESS_LABELS[kind] for kind in kinds(self.send_to))


def kinds(send_to: str) -> list[str]:
    return {"none": [], "company": ["company"], "private": ["private"], "both": ["company", "private"]}[send_to]


def recipients(invitee, send_to: str) -> list[str]:
    addresses = {"company": invitee.company_email, "private": invitee.private_email}
    return [addresses[kind] for kind in kinds(send_to) if addresses[kind]]


def build_message(*, invitation: Invitation, client, application, invitee, link: str, to: list[str]):
    """The e-mail for one invitee: the application's subject and body (or the defaults), as text and HTML."""
    configured = (application.configuration or {}).get("invitation_email") or {}
    branding = (application.configuration or {}).get("branding") or {}
    values = {
        "invitee_name": invitee.full_name,
        "client_name": client.legal_name,
        "application_name": branding.get("display_name") or application.name or application.app_code,
        "link": link,
        "expires_at": f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC",
    }
    subject = fill_placeholders(configured.get("subject") or DEFAULT_SUBJECT, {**values, "link": ""})
    body = fill_placeholders(configured.get("body") or DEFAULT_BODY, values)
    context = {
        "body": body,
        "paragraphs": [paragraph for paragraph in body.split("\n\n") if paragraph.strip()],
        "link_alone": any(paragraph.strip() == link for paragraph in body.split("\n\n")),
        "link": link,
        "color": branding.get("primary_color") or "#417690",
        "application_name": values["application_name"],
        "code": invitation.code,
    }
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=render_to_string("invitations/email/invitation.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
    )
    message.attach_alternative(render_to_string("invitations/email/invitation.html", context), "text/html")
    return message


def describe(error: Exception) -> str:
    """An SMTP or network error as its class and numeric code: the text may quote the address."""
    code = getattr(error, "smtp_code", None)
    if isinstance(error, smtplib.SMTPRecipientsRefused) and error.recipients:
        code = next(iter(error.recipients.values()))[0]
    return f"{error.__class__.__name__}{f' {code}' if code else ''}"


def send_after_commit(*, actor, client, delivery: Delivery, items: list[tuple[Invitation, object, str]]) -> None:
    """Send one e-mail per (invitation, invitee, link) once the caller's transaction commits, then audit the outcome.

    Messages go over one connection. The outcome lands in `delivery`; a failure never undoes the
    issue (it is committed): the staff member is told and can resend.
    """
    if delivery.send_to == "none" or not items:
        return

    def send():
        _send(actor=actor, client=client, delivery=delivery, items=items)

    transaction.on_commit(send, using=router.db_for_write(Invitation))


def _send(*, actor, client, delivery: Delivery, items) -> None:
    failed_errors = []
    try:
        connection = get_connection(fail_silently=False)
        connection.open()
    except Exception as error:
        delivery.failed = [invitation.code for invitation, _, _ in items]
        failed_errors.append(describe(error))
    else:
        try:
            for invitation, invitee, link in items:
                to = recipients(invitee, delivery.send_to)
                message = build_message(
                    invitation=invitation, client=client, application=invitation.application, invitee=invitee,
                    link=link, to=to,
                )  # fmt: skip
                try:
                    connection.send_messages([message])
                    delivery.sent += 1
                except Exception as error:
                    delivery.failed.append(invitation.code)
                    failed_errors.append(describe(error))
        finally:
            with contextlib.suppress(Exception):  # the server hanging up at QUIT changes nothing sent
                connection.close()
    delivery.status = "failed" if delivery.failed else "sent"
    delivery.error = ", ".join(sorted(set(failed_errors)))
    if delivery.failed:
        log.warning("invitation e-mail failed for %s: %s", ", ".join(delivery.failed[:20]), delivery.error)
    _audit(actor=actor, client=client, delivery=delivery, items=items)


def _audit(*, actor, client, delivery: Delivery, items) -> None:
    single = items[0][0] if len(items) == 1 else None
    target = {"target": single} if single else {
        "target_type": Invitation._meta.label_lower, "target_label": f"{len(items)} invitation(s)",
    }  # fmt: skip
    with transaction.atomic(using=router.db_for_write(Invitation)):
        if delivery.sent:
            changes = {"sent_to": delivery.to_label, "count": delivery.sent}
            if not single:
                changes["invitations"] = [inv.code for inv, _, _ in items if inv.code not in delivery.failed]
            record(actor=actor, action="invitation.sent", client=client, changes=changes, **target)
        if delivery.failed:
            changes = {"sent_to": delivery.to_label, "error": delivery.error, "count": len(delivery.failed)}
            if not single:
                changes["invitations"] = delivery.failed
            record(actor=actor, action="invitation.send_failed", client=client, changes=changes, **target)
