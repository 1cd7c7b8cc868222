"""manage.py reactivate_client: make a deactivated or suspended client active again."""

from clients.management.commands.create_client import client_data
from clients.selectors import get_client
from clients.services import reactivate_client
from config.commands import FlowsCommand, Result


class Command(FlowsCommand):
    help = "Reactivate a client. Safe to re-run."
    example = "manage.py reactivate_client acme"

    def add_arguments(self, parser):
        self.add_client_argument(parser)

    def run(self, **options):
        client = reactivate_client(actor=self.actor, client=get_client(options["client"]))
        return Result(client_data(client), f"Client {client.code} is active.")
