"""manage.py update_client: change a client's details or tier."""

from clients.management.commands.create_client import client_data
from clients.models import Client
from clients.selectors import get_client
from clients.services import update_client
from config.commands import FlowsCommand, Result, UsageError


class Command(FlowsCommand):
    help = "Change a client's legal name, domain, region or tier. A downgrade its usage does not fit is refused."
    example = "manage.py update_client acme --tier pro"

    def add_arguments(self, parser):
        self.add_client_argument(parser)
        parser.add_argument("--name", dest="legal_name", help="New legal name.")
        parser.add_argument("--domain", help="New Flows hostname.")
        parser.add_argument("--region", choices=[c.value for c in Client.Region], type=str.upper)
        parser.add_argument("--tier", help="New tier: free, pro or enterprise.")

    def run(self, **options):
        changes = {key: options[key] for key in ("legal_name", "domain", "region", "tier") if options[key] is not None}
        if not changes:
            raise UsageError("nothing to change: give at least one of --name, --domain, --region, --tier")
        client = update_client(actor=self.actor, client=get_client(options["client"]), **changes)
        return Result(client_data(client), f"Updated client {client.code}.")
