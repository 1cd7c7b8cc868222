"""manage.py usage_report: every client's month on one line each (text, CSV or JSON), streamed batch by batch."""

import csv
import io

from config.commands import FlowsCommand, Result, UsageError
from reports.analytics import every_client_month
from reports.management.commands.client_analytics import month_option

COLUMNS = [
    "client", "tier", "status", "issued", "redeemed", "expired", "revoked", "redemption_rate",
    "median_hours_to_redeem", "seats_used", "seats_limit", "api_requests", "api_2xx", "api_4xx", "api_5xx", "complete",
]  # fmt: skip


def row(figures) -> dict:
    invitations = figures.invitations.as_dict()
    by_class = figures.api.by_status_class
    return {
        "client": figures.client.code,
        "tier": figures.client.tier_id,
        "status": figures.client.status,
        **{name: invitations[name] for name in ("issued", "redeemed", "expired", "revoked")},
        "redemption_rate": invitations["redemption_rate"],
        "median_hours_to_redeem": invitations["median_hours_to_redeem"],
        "seats_used": figures.seats_used,
        "seats_limit": figures.seats_limit,
        "api_requests": figures.api.requests,
        "api_2xx": by_class["2xx"],
        "api_4xx": by_class["4xx"],
        "api_5xx": by_class["5xx"],
        "complete": figures.complete,
    }


class Command(FlowsCommand):
    help = (
        "Report every client's figures for a month (UTC), one line per client in code order: invitations issued, "
        "redeemed, expired and revoked, redemption rate, median hours to redeem, seats, API requests. Text and "
        "--csv are written as the clients are read, 2,000 at a time; --json prints one object at the end."
    )
    example = "manage.py usage_report --month 2026-11 --csv > usage-2026-11.csv"

    def add_arguments(self, parser):
        parser.add_argument("--month", help="YYYY-MM (default: the current month, UTC).")
        parser.add_argument("--csv", action="store_true", help="CSV with a header row on stdout.")

    def run(self, **options):
        if options["csv"] and self.as_json:
            raise UsageError("choose one of --csv and --json")
        month = month_option(options["month"])
        rows = (row(figures) for figures in every_client_month(month))
        if self.as_json:
            clients = list(rows)
            return Result({"month": f"{month:%Y-%m}", "clients": clients, "count": len(clients)})
        count = 0
        if options["csv"]:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            for one in rows:
                writer.writerow(one)
                count += 1
                if count % 500 == 0:
                    self.stdout.write(buffer.getvalue(), ending="")
                    buffer.seek(0)
                    buffer.truncate()
            self.stdout.write(buffer.getvalue(), ending="")
            return Result()
        for one in rows:
            rate = "-" if one["redemption_rate"] is None else f"{one['redemption_rate']:.1%}"
            self.stdout.write(
                f"{one['client']:<20} {one['tier']:<10} {one['status']:<11} issued {one['issued']:>6}  "
                f"redeemed {one['redeemed']:>6}  expired {one['expired']:>6}  revoked {one['revoked']:>6}  "
                f"rate {rate:>6}  seats {one['seats_used']}/{one['seats_limit']}  api {one['api_requests']}"
            )
            count += 1
        return Result(text=f"{count} client(s), {month:%Y-%m}")
