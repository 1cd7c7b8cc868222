"""manage.py redeem_invitation: use an invitation once, as its client under RLS, and print the invitee's data."""

from config.commands import FlowsCommand, Result, printable
from invitations.management.commands.create_invitation import invitation_data
from invitations.management.commands.validate_invitation import read_token
from invitations.services import redeem_invitation


class Command(FlowsCommand):
    help = (
        "Redeem an invitation token for an operator (the Flows applications use the tenant API): counts the use "
        "and prints the invitee's name and e-mails, decrypted from the token."
    )
    example = "manage.py redeem_invitation - < token.txt"

    def add_arguments(self, parser):
        parser.add_argument("token", help="The token, or - to read it from stdin.")

    def run(self, **options):
        redemption = redeem_invitation(actor=self.actor, token=read_token(options["token"]))
        invitee, invitation = redemption.invitee, redemption.invitation
        text = (
            f"Redeemed {invitation.code} ({invitation.used_count}/{invitation.max_uses} used): "
            f"{printable(invitee['name'])} <{printable(invitee['company_email'])}>"
        )
        return Result({"invitation": invitation_data(invitation), "invitee": invitee}, text)
