"""manage.py list_invitations: a client's invitations, newest first; metadata only."""

from clients.selectors import get_client
from config.commands import FlowsCommand, Result, UsageError, printable
from invitations.management.commands.create_invitation import invitation_data
from invitations.models import Invitation
from invitations.selectors import seats_used


class Command(FlowsCommand):
    help = "List a client's invitations (code, application, status, uses, expiry) and its seat usage."
    example = "manage.py list_invitations --client acme --status pending --json"

    def add_arguments(self, parser):
        self.add_client_argument(parser, positional=False)
        parser.add_argument("--status", choices=Invitation.Status.values, help="Only this status.")
        parser.add_argument("--app", help="Only this application.")
        parser.add_argument("--limit", type=int, default=100, help="At most this many (default 100).")

    def run(self, **options):
        if not 1 <= options["limit"] <= 10_000:
            raise UsageError("--limit must be between 1 and 10000")
        client = get_client(options["client"])
        invitations = Invitation.objects.filter(client_id=client.pk).select_related("client", "application")
        if options["status"]:
            invitations = invitations.filter(status=options["status"])
        if options["app"]:
            invitations = invitations.filter(application__app_code=options["app"].strip().lower())
        rows = list(invitations.order_by("-created_at")[: options["limit"]])
        seats = seats_used(client)
        lines = [f"{client.code}: {seats} of {client.tier.max_users} seats used; {len(rows)} invitation(s) shown"]
        lines += [
            f"  {i.code}  {i.application.app_code:<14} {i.status:<9} {i.used_count}/{i.max_uses}  "
            f"expires {i.expires_at:%Y-%m-%d %H:%M}  by {printable(i.created_by)}"
            for i in rows
        ]
        data = {"client": client.code, "seats_used": seats, "max_users": client.tier.max_users}
        return Result({**data, "invitations": [invitation_data(i) for i in rows]}, "\n".join(lines))
