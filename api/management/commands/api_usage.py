"""manage.py api_usage: a client's tenant API requests in one month, by day, key, endpoint and status class."""

from django.utils import timezone

from api.selectors import month_bounds, usage_rows
from clients.models import ApiKey, Application
from clients.selectors import get_client
from config.commands import FlowsCommand, Result


class Command(FlowsCommand):
    help = "Show a client's tenant API usage in one month: requests per day, key, endpoint and status class."
    example = "manage.py api_usage --client acme --month 2026-11 --json"

    def add_arguments(self, parser):
        self.add_client_argument(parser, positional=False)
        parser.add_argument("--month", help="YYYY-MM (default: the current month, UTC).")

    def run(self, **options):
        client = get_client(options["client"])
        month = options["month"] or f"{timezone.now():%Y-%m}"
        start, end = month_bounds(month)
        rows = usage_rows(client.pk, start, end)
        keys = dict(ApiKey.objects.filter(client_id=client.pk).values_list("id", "prefix"))
        apps = dict(Application.objects.filter(client_id=client.pk).values_list("id", "app_code"))
        data_rows = [
            {
                "day": row["day"].isoformat(),
                "application": apps.get(row["application_id"]),
                "api_key": keys.get(row["api_key_id"], str(row["api_key_id"])),
                "endpoint": row["endpoint"],
                "status_class": row["status_class"],
                "count": row["count"],
            }
            for row in rows
        ]
        totals: dict[str, int] = {"2xx": 0, "4xx": 0, "5xx": 0}
        for row in rows:
            totals[row["status_class"]] += row["count"]
        data = {"client": client.code, "month": month, "total": sum(totals.values()), "by_status_class": totals}
        data["rows"] = data_rows
        lines = [
            f"{client.code}: {data['total']:,} API request(s) in {month} "
            f"({', '.join(f'{name}: {count:,}' for name, count in totals.items())})",
            *[
                f"  {r['day']}  {r['api_key']:<12}  {r['application'] or '-':<14}  {r['endpoint']:<20} "
                f"{r['status_class']}  {r['count']:>8,}"
                for r in data_rows
            ],
        ]
        return Result(data, "\n".join(lines))
