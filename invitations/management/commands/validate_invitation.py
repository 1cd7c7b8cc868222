"""manage.py validate_invitation: check a token (signature, claims, database). Exit 0 valid, 1 invalid with its code."""

import sys

from config.commands import FlowsCommand, Result
from invitations.management.commands.create_invitation import invitation_data
from invitations.services import validate_invitation
from invitations.tokens import InvitationRejected

MAX_TOKEN_INPUT = 64 * 1024  # far above any token (16 KB at most): a larger input is not one


def read_token(argument: str) -> str:
    """The token argument, or stdin for `-` (keeps tokens out of shell history), read with a bound."""
    if argument != "-":
        return argument.strip()
    data = sys.stdin.buffer.read(MAX_TOKEN_INPUT + 1) if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    if len(data) > MAX_TOKEN_INPUT:
        raise InvitationRejected("malformed_token", "The input on stdin is far larger than any invitation token.")
    return data.decode("utf-8", errors="replace").strip()


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
