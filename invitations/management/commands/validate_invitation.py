"""manage.py validate_invitation: check a token (signature, claims, database). Exit 0 valid, 1 invalid with its code."""

import sys

from config.commands import FlowsCommand, Result
from invitations.management.commands.create_invitation import invitation_data
from invitations.services import validate_invitation


def read_token(argument: str) -> str:
    """The token argument, or stdin for `-` (keeps tokens out of shell history)."""
    return (sys.stdin.read() if argument == "-" else argument).strip()


class Command(FlowsCommand):
    help = (
        "Check an invitation token: signature and claims against the published keys, then the database. "
        "Exit 0 when it can be redeemed now; 1 with the rejection code otherwise. Nothing changes."
    )
    example = "manage.py validate_invitation - < token.txt"

    def add_arguments(self, parser):
        parser.add_argument("token", help="The token, or - to read it from stdin.")

    def run(self, **options):
        invitation = validate_invitation(token=read_token(options["token"]))
        text = (
            f"valid: {invitation.code} ({invitation.client.code}/{invitation.application.app_code}), "
            f"{invitation.uses_left} use(s) left, expires {invitation.expires_at:%Y-%m-%d %H:%M} UTC"
        )
        return Result({"valid": True, "invitation": invitation_data(invitation)}, text)
