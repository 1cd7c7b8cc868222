"""manage.py deactivate_client: stop a client's applications from working (reversible)."""

from clients.management.commands.create_client import client_data
from clients.selectors import get_client
from clients.services import deactivate_client
from config.commands import FlowsCommand, Result


class Command(FlowsCommand):
    help = "Deactivate a client. Safe to re-run; reactivate_client undoes it."
    example = 'manage.py deactivate_client acme --reason "contract ended"'

    def add_arguments(self, parser):
        self.add_client_argument(parser)
        parser.add_argument("--reason", default="", help="Why, for the audit trail.")

    def run(self, **options):
        client = deactivate_client(actor=self.actor, client=get_client(options["client"]), reason=options["reason"])
        return Result(client_data(client), f"Client {client.code} is deactivated.")
