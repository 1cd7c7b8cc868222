"""manage.py grant_client_access: let a staff user see (and, with a role, work on) one client."""

from clients.selectors import get_client
from config.commands import FlowsCommand, Result
from staff import services
from staff.roles import ROLE_NAMES
from staff.selectors import get_staff_user, user_access


class Command(FlowsCommand):
    help = "Grant a staff user access to a client, optionally adding them to a role. Safe to re-run."
    example = 'manage.py grant_client_access sam acme --role "Client manager"'

    def add_arguments(self, parser):
        parser.add_argument("user", help="The staff user's username.")
        self.add_client_argument(parser)
        parser.add_argument("--role", help=f"Also add the user to this role: {', '.join(ROLE_NAMES)}.")

    def run(self, **options):
        user, client = get_staff_user(options["user"]), get_client(options["client"])
        changed = services.grant_client_access(actor=self.actor, user=user, client=client, role=options["role"])
        verb = "now has" if changed else "already had"
        return Result({"changed": changed, **user_access(user)}, f"{user.username} {verb} access to {client.code}.")
