"""manage.py create_api_key: issue a tenant API key for a client; the key is printed once."""

from datetime import timedelta

from django.utils import timezone

from clients.models import ApiKey
from clients.selectors import get_client
from clients.services import create_api_key
from config.commands import FlowsCommand, Result, UsageError, printable


def api_key_data(api_key: ApiKey) -> dict:
    return {
        "id": str(api_key.pk),
        "client": api_key.client.code,
        "name": api_key.name,
        "prefix": api_key.prefix,
        "scopes": api_key.scopes,
        "application": api_key.application.app_code if api_key.application_id else None,
        "expires_at": api_key.expires_at.isoformat() if api_key.expires_at else None,
        "rate_limit": api_key.rate_limit,
        "revoked_at": api_key.revoked_at.isoformat() if api_key.revoked_at else None,
    }


class Command(FlowsCommand):
    help = (
        "Issue an API key with which a client's Flows application calls the tenant API. The key is printed once "
        "and only its hash is stored: keep it in the application's secret store."
    )
    example = (
        'manage.py create_api_key acme --name "offboarding production" --application offboarding '
        "--scope configuration:read --scope invitations:redeem --expires-in-days 365 --rate-limit 120"
    )

    def add_arguments(self, parser):
        self.add_client_argument(parser)
        parser.add_argument("--name", required=True, help="What uses the key; unique within the client.")
        parser.add_argument(
            "--scope",
            dest="scopes",
            action="append",
            required=True,
            choices=ApiKey.Scope.values,
            help="Repeat for each scope.",
        )
        parser.add_argument("--application", help="Limit the key to one of the client's applications (its app code).")
        parser.add_argument("--expires-in-days", type=int, help="Days until the key stops working (default: never).")
        parser.add_argument(
            "--rate-limit",
            type=int,
            help="Requests per minute for this key (default: the FLOWS_API_RATE_LIMIT_PER_MINUTE setting).",
        )

    def run(self, **options):
        days = options["expires_in_days"]
        if days is not None and not 1 <= days <= 3650:
            raise UsageError("--expires-in-days must be between 1 and 3650")
        if options["rate_limit"] is not None and not 1 <= options["rate_limit"] <= 1_000_000:
            raise UsageError("--rate-limit must be between 1 and 1000000 requests a minute")
        api_key, full_key = create_api_key(
            actor=self.actor,
            client=get_client(options["client"]),
            name=options["name"],
            scopes=options["scopes"],
            application=options["application"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
            rate_limit=options["rate_limit"],
        )
        text = (
            f"Created API key {api_key.prefix} ({printable(api_key.name)}) for {api_key.client.code}.\n"
            f"Key (shown once, store it now):\n{full_key}"
        )
        return Result({"api_key": api_key_data(api_key), "key": full_key}, text)
