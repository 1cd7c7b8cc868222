"""manage.py client_status: a client's tier, limits and usage, applications and recent audit events."""

from django.utils import timezone

from api.selectors import usage_by_class
from clients.management.commands.create_api_key import api_key_data
from clients.management.commands.create_client import client_data
from clients.models import ApiKey, Application
from clients.selectors import client_usage, get_client, recent_events
from config.commands import FlowsCommand, Result, printable


class Command(FlowsCommand):
    help = "Show a client's tier, limits and usage, applications and recent audit events."
    example = "manage.py client_status acme --json"

    def add_arguments(self, parser):
        self.add_client_argument(parser)
        parser.add_argument("--events", type=int, default=10, help="How many recent audit events (default 10).")

    def run(self, **options):
        client = get_client(options["client"])
        tier, usage = client.tier, client_usage(client)
        applications = list(Application.objects.filter(client_id=client.pk).order_by("app_code"))
        api_keys = list(
            ApiKey.objects.filter(client_id=client.pk).select_related("client", "application").order_by("name")
        )
        now = timezone.now()
        events = list(recent_events(client, limit=max(0, options["events"])))
        data = client_data(client)
        data["tier"] = {
            "code": tier.code,
            "max_users": tier.max_users,
            "storage_gb": tier.storage_gb,
            "max_applications": tier.max_applications,
            "features": tier.features,
        }
        data["usage"] = {"applications": usage.applications, "seats": usage.seats}
        data["applications"] = [
            {"app_code": a.app_code, "name": a.name, "status": a.status, "features": a.features} for a in applications
        ]
        data["api_keys"] = [api_key_data(k) for k in api_keys]
        api_usage = usage_by_class(client_id=client.pk)
        data["api_usage_this_month"] = api_usage
        data["recent_events"] = [
            {
                "occurred_at": e.occurred_at.isoformat(),
                "action": e.action,
                "actor": e.actor_label,
                "target": e.target_label,
            }
            for e in events
        ]
        lines = [
            f"{client.code}  {printable(client.legal_name)}  ({printable(client.domain)})",
            f"  status {client.status}, region {client.region}, created {client.created_at:%Y-%m-%d}",
            f"  tier {tier.name}: seats {usage.seats}/{tier.max_users}, storage {tier.storage_gb} GB, "
            f"applications {usage.applications}/{tier.max_applications}",
            f"  tier features: {', '.join(tier.features) or '—'}",
            "Applications:",
            *[
                f"  {a.app_code:<16} {a.status:<9} {printable(a.name)}  [{printable(', '.join(a.features))}]"
                for a in applications
            ],
            *(["  (none)"] if not applications else []),
            "API keys:",
            *[
                f"  {k.prefix}  {'usable ' if k.is_usable(now) else 'revoked' if k.revoked_at else 'expired'}"
                f"  {printable(k.name)}  [{', '.join(k.scopes)}]"
                for k in api_keys
            ],
            *(["  (none)"] if not api_keys else []),
            f"API requests this month: {', '.join(f'{name}: {count:,}' for name, count in api_usage.items())}",
            "Recent audit events:",
            *[
                f"  {e.occurred_at:%Y-%m-%d %H:%M:%S}  {e.action:<22} {printable(e.actor_label)}  "
                f"{printable(e.target_label)}"
                for e in events
            ],
            *(["  (none)"] if not events else []),
        ]
        return Result(data, "\n".join(lines))
