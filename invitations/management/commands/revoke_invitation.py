"""manage.py revoke_invitation: stop an invitation from being redeemed."""

from config.commands import FlowsCommand, Result
from invitations.management.commands.create_invitation import invitation_data
from invitations.selectors import get_invitation
from invitations.services import revoke_invitation


class Command(FlowsCommand):
    help = "Revoke a pending invitation by its code (INV-…) or id, with a reason. Safe to re-run."
    example = 'manage.py revoke_invitation INV-7K2M9Q --reason "sent to the wrong address"'

    def add_arguments(self, parser):
        parser.add_argument("invitation", help="The invitation's code or id.")
        parser.add_argument("--reason", required=True, help="Why (recorded).")

    def run(self, **options):
        invitation = revoke_invitation(
            actor=self.actor, invitation=get_invitation(options["invitation"]), reason=options["reason"]
        )
        return Result({"invitation": invitation_data(invitation)}, f"Invitation {invitation.code} is revoked.")
