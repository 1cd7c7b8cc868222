"""manage.py list_secrets: a client's secrets and their metadata, never their values."""

from clients.selectors import get_client
from config.commands import FlowsCommand, Result, printable
from vault.management.commands.set_secret import secret_data
from vault.selectors import secrets_of


class Command(FlowsCommand):
    help = "List a client's secrets: names, providers, types, state, use. Values are never shown."
    example = "manage.py list_secrets acme --json"

    def add_arguments(self, parser):
        self.add_client_argument(parser)

    def run(self, **options):
        client = get_client(options["client"])
        secrets = list(secrets_of(client).select_related("client"))
        lines = [f"{client.code}: {len(secrets)} secret(s)"]
        for secret in secrets:
            state = "active" if secret.is_active else "inactive"
            expires = f"expires {secret.expires_at:%Y-%m-%d}" if secret.expires_at else "no expiry"
            lines.append(
                f"  {printable(secret.name):<28} {printable(secret.provider):<12} {secret.secret_type:<18} {state:<8} "
                f"v{secret.data_key_version}  {expires}  used {secret.usage_count}x"
            )
        return Result({"client": client.code, "secrets": [secret_data(s) for s in secrets]}, "\n".join(lines))
