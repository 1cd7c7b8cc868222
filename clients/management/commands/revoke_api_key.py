"""manage.py revoke_api_key: stop an API key from working, at once."""

from clients.management.commands.create_api_key import api_key_data
from clients.selectors import get_api_key, get_client
from clients.services import revoke_api_key
from config.commands import FlowsCommand, Result


class Command(FlowsCommand):
    help = "Revoke one of a client's API keys by its prefix or id. Safe to re-run."
    example = "manage.py revoke_api_key acme 3f9a1c27b04e"

    def add_arguments(self, parser):
        self.add_client_argument(parser)
        parser.add_argument("key", help="The key's prefix (as listed by client_status) or its id.")

    def run(self, **options):
        client = get_client(options["client"])
        api_key = revoke_api_key(actor=self.actor, api_key=get_api_key(client, options["key"]))
        return Result({"api_key": api_key_data(api_key)}, f"API key {api_key.prefix} of {client.code} is revoked.")
