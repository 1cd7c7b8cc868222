"""manage.py resend_invitation: a new token for a pending or expired invitation; the old one stops working."""

from config.commands import FlowsCommand, Result
from invitations.management.commands.create_invitation import (
    add_send_argument,
    invitation_data,
    parse_duration,
    with_delivery,
)
from invitations.selectors import get_invitation
from invitations.services import Invitee, resend_invitation
from invitations.tokens import invitation_link


class Command(FlowsCommand):
    help = (
        "Issue a new token for a pending or expired invitation (same code). The invitee's data is given again — it was "
        "never stored — and the company e-mail must be the invited one. The previous token stops working."
    )
    example = 'manage.py resend_invitation INV-7K2M9Q --name "Ada Lovelace" --company-email ada@acme.example'

    def add_arguments(self, parser):
        parser.add_argument("invitation", help="The invitation's code or id.")
        parser.add_argument("--name", required=True)
        parser.add_argument("--company-email", required=True)
        parser.add_argument("--private-email", default="")
        parser.add_argument("--expires-in", help="12h … 30d (default: the original validity).")
        add_send_argument(parser)

    def run(self, **options):
        expires_in = parse_duration(options["expires_in"]) if options["expires_in"] else None
        invitation = get_invitation(options["invitation"])
        token = resend_invitation(
            actor=self.actor,
            invitation=invitation,
            invitee=Invitee(options["name"], options["company_email"], options["private_email"]),
            expires_in=expires_in,
            send_to=options["send"],
        )
        delivery = getattr(invitation, "delivery", None)
        invitation = get_invitation(str(invitation.pk))
        link = invitation_link(invitation.client, invitation.application, token)
        text = f"New token for {invitation.code} (the previous one no longer works). Shown once:\n{link}"
        text += f"\n\nToken:\n{token}"
        data = {"invitation": invitation_data(invitation), "token": token, "link": link}
        return with_delivery(Result(data, text), delivery, invitation.code)
