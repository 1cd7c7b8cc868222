"""manage.py create_invitation: issue an invitation and print its token and link (shown once, never stored)."""

import re
from datetime import timedelta

from clients.selectors import get_application, get_client
from config.commands import FlowsCommand, Result, UsageError
from config.errors import excerpt
from invitations.delivery import SEND_TO_CHOICES
from invitations.models import Invitation
from invitations.services import Invitee, issue_invitation
from invitations.tokens import invitation_link

DURATION = re.compile(r"^(\d{1,6})([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """`90m`, `36h` or `7d` (the service checks the allowed range)."""
    match = DURATION.match((text or "").strip().lower())
    if not match:
        raise UsageError(f"--expires-in must look like 12h or 7d, not {excerpt(text)!r}")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


def add_send_argument(parser) -> None:
    parser.add_argument(
        "--send", choices=list(SEND_TO_CHOICES), default="none",
        help="E-mail the link to the invitee's company address, private address, both, or none (default).",
    )  # fmt: skip


def with_delivery(result: Result, delivery, code: str) -> Result:
    """The command's result with the e-mail's outcome: a failed send is said (the invitation stands), never hidden."""
    if delivery is None:
        return result
    result.data["delivery"] = {"status": delivery.status, "sent_to": delivery.to_label, "error": delivery.error}
    if delivery.status == "sent":
        result.text += f"\n\nE-mailed to {delivery.to_label}."
    else:
        result.text += (
            f"\n\nThe e-mail to {delivery.to_label} was NOT sent ({delivery.error or delivery.status}): "
            f"give the link yourself, or run manage.py resend_invitation {code} --send …"
        )
    return result


def invitation_data(invitation: Invitation) -> dict:
    """An invitation's metadata for output: never personal data (there is none to give)."""
    return {
        "id": str(invitation.pk),
        "code": invitation.code,
        "client": invitation.client.code,
        "application": invitation.application.app_code,
        "status": invitation.status,
        "max_uses": invitation.max_uses,
        "used_count": invitation.used_count,
        "permissions": invitation.permissions,
        "expires_at": invitation.expires_at.isoformat(),
        "created_by": invitation.created_by,
        "resend_count": invitation.resend_count,
    }


class Command(FlowsCommand):
    help = (
        "Issue an invitation to a client's application. Prints the token and the invitation link once: they are "
        "not stored, and the invitee's name and e-mails exist only inside the token, encrypted."
    )
    example = (
        'manage.py create_invitation --client acme --app offboarding --name "Ada Lovelace" '
        "--company-email ada@acme.example --expires-in 7d --permissions manager --send company"
    )

    def add_arguments(self, parser):
        self.add_client_argument(parser, positional=False)
        parser.add_argument("--app", required=True, help="The application's code, e.g. onboarding.")
        parser.add_argument("--name", required=True, help="The invitee's full name.")
        parser.add_argument("--company-email", required=True, help="The invitee's company e-mail address.")
        parser.add_argument("--private-email", default="", help="A private e-mail address (optional).")
        parser.add_argument("--expires-in", default="7d", help="12h … 30d (default 7d).")
        parser.add_argument("--uses", type=int, default=1, help="How many people may use the link (default 1).")
        parser.add_argument("--permissions", default="", help="Comma-separated permissions for the application.")
        add_send_argument(parser)

    def run(self, **options):
        expires_in = parse_duration(options["expires_in"])
        client = get_client(options["client"])
        application = get_application(client, options["app"])
        invitation, token = issue_invitation(
            actor=self.actor,
            client=client,
            application=application,
            invitee=Invitee(options["name"], options["company_email"], options["private_email"]),
            expires_in=expires_in,
            max_uses=options["uses"],
            permissions=options["permissions"].split(","),
            send_to=options["send"],
        )
        link = invitation_link(client, application, token)
        text = (
            f"Invitation {invitation.code} for {client.code}/{application.app_code}, valid until "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC. Shown once:\n{link}\n\nToken:\n{token}"
        )
        data = {"invitation": invitation_data(invitation), "token": token, "link": link}
        return with_delivery(Result(data, text), invitation.delivery, invitation.code)
