"""manage.py revoke_client_access: take a client away from a staff user."""

from clients.selectors import get_client
from config.commands import FlowsCommand, Result
from staff import services
from staff.selectors import get_staff_user, user_access


class Command(FlowsCommand):
    help = "Revoke a staff user's direct grant on a client (grants through a group stay). Safe to re-run."
    example = "manage.py revoke_client_access sam acme"

    def add_arguments(self, parser):
        parser.add_argument("user", help="The staff user's username.")
        self.add_client_argument(parser)

    def run(self, **options):
        user, client = get_staff_user(options["user"]), get_client(options["client"])
        changed = services.revoke_client_access(actor=self.actor, user=user, client=client)
        verb = "no longer has" if changed else "had no"
        return Result(
            {"changed": changed, **user_access(user)}, f"{user.username} {verb} direct access to {client.code}."
        )
