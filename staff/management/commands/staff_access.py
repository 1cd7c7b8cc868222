"""manage.py staff_access: who may see what — one user's roles and clients, or one client's staff."""

from clients.selectors import get_client
from config.commands import FlowsCommand, Result, UsageError
from staff.selectors import client_access, get_staff_user, user_access


class Command(FlowsCommand):
    help = "Show a staff user's roles and clients, or with --client who may see that client."
    example = "manage.py staff_access sam    |    manage.py staff_access --client acme --json"

    def add_arguments(self, parser):
        parser.add_argument("user", nargs="?", help="The staff user's username.")
        parser.add_argument("--client", help="The client's code (e.g. acme) or id.")

    def run(self, **options):
        if bool(options["user"]) == bool(options["client"]):
            raise UsageError("name a user or --client, not both")
        if options["client"]:
            access = client_access(get_client(options["client"]))
            text = (
                f"Client {access['client']}\n  users: {', '.join(access['users']) or '-'}\n"
                f"  groups: {', '.join(access['groups']) or '-'}\n"
                f"  every client (platform-wide roles): {', '.join(access['platform_wide']) or '-'}"
            )
            return Result(access, text)
        access = user_access(get_staff_user(options["user"]))
        clients = "every client" if access["all_clients"] else ", ".join(access["clients"]) or "none"
        text = f"{access['username']}\n  roles: {', '.join(access['roles']) or '-'}\n  clients: {clients}"
        return Result(access, text)
