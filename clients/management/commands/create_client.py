"""manage.py create_client: provision a client (tenant)."""

from clients.models import Client
from clients.services import create_client
from config.commands import FlowsCommand, Result


def client_data(client: Client) -> dict:
    return {
        "client": {
            "id": str(client.pk),
            "code": client.code,
            "legal_name": client.legal_name,
            "domain": client.domain,
            "region": client.region,
            "tier": client.tier_id,
            "status": client.status,
        }
    }


class Command(FlowsCommand):
    help = "Create a client with a tier and a region."
    example = (
        'manage.py create_client --code acme --name "Acme Corporation" '
        "--domain acme-corp.thepia.net --region EU --tier pro"
    )

    def add_arguments(self, parser):
        parser.add_argument("--code", required=True, help="2 to 50 lowercase letters, digits or hyphens.")
        parser.add_argument("--name", required=True, help="The client's legal name.")
        parser.add_argument("--domain", required=True, help="The client's Flows hostname.")
        parser.add_argument("--region", required=True, choices=[c.value for c in Client.Region], type=str.upper)
        parser.add_argument("--tier", default="free", help="free, pro or enterprise (default: free).")

    def run(self, **options):
        client = create_client(
            actor=self.actor,
            code=options["code"],
            legal_name=options["name"],
            domain=options["domain"],
            region=options["region"],
            tier=options["tier"],
        )
        return Result(client_data(client), f"Created client {client.code} ({client.pk}) on tier {client.tier_id}.")
