"""manage.py erase_client: crypto-shred a client (GDPR erasure); its audit trail stays."""

from clients.management.commands.create_client import client_data
from clients.selectors import get_client
from clients.services import erase_client
from config.commands import FlowsCommand, Result
from vault.selectors import is_erased


class Command(FlowsCommand):
    help = (
        "Erase a client: destroy its data keys so that its secrets and the personal data in its invitation "
        "tokens can never be decrypted again, and deactivate it. Cannot be undone. The audit trail stays. "
        "Safe to re-run."
    )
    example = "manage.py erase_client acme --confirm acme"

    def add_arguments(self, parser):
        self.add_client_argument(parser)
        parser.add_argument("--confirm", required=True, help="Repeat the client's code to confirm.")

    def run(self, **options):
        client = get_client(options["client"])
        already = is_erased(client)
        client = erase_client(actor=self.actor, client=client, confirm=options["confirm"])
        text = f"Client {client.code} was already erased." if already else f"Client {client.code} is erased."
        return Result({**client_data(client), "already_erased": already}, text)
