"""manage.py client_analytics: one client's month — invitations by application, redemption, seats, API usage."""

from django.utils import timezone

from clients.selectors import get_client
from config.commands import FlowsCommand, Result, UsageError
from config.errors import InvalidInput
from reports.analytics import InvitationFigures, MonthFigures, client_month_figures, parse_month


def month_option(value: str | None):
    """The --month option as the first day of the month; a usage error (exit 2) when it is not YYYY-MM."""
    try:
        return parse_month(f"{timezone.now():%Y-%m}" if value is None else value)
    except InvalidInput as error:
        raise UsageError(f"argument --month: {error.message}") from None


def invitation_line(figures: InvitationFigures) -> str:
    rate = "-" if figures.redemption_rate is None else f"{figures.redemption_rate:.1%}"
    median = figures.as_dict()["median_hours_to_redeem"]
    return (
        f"{figures.issued} issued, {figures.redeemed} redeemed, {figures.expired} expired, {figures.revoked} revoked; "
        f"redemption rate {rate}; median time to redeem {'-' if median is None else f'{median} h'}"
    )


def describe(figures: MonthFigures) -> str:
    api = figures.api
    lines = [
        f"{figures.client.code}, {figures.month:%Y-%m} (UTC)"
        + ("" if figures.complete else ": older than the invitation retention, finished invitations purged"),
        f"Invitations: {invitation_line(figures.invitations)}",
        *(f"  {code}: {invitation_line(one)}" for code, one in figures.by_application.items()),
        f"Seats: {figures.seats_used} of {figures.seats_limit} used (now)",
        f"API: {api.requests} request(s) ("
        + ", ".join(f"{name}: {count}" for name, count in api.by_status_class.items())
        + ")",
        *(f"  key {prefix}: {count}" for prefix, count in sorted(api.by_key.items())),
    ]
    return "\n".join(lines)


class Command(FlowsCommand):
    help = (
        "Show one client's figures for a month (UTC): invitations issued, redeemed, expired and revoked by "
        "application, the redemption rate and median time to redeem, seats used against the tier, and tenant API "
        "requests by status class and key. See docs/console.md."
    )
    example = "manage.py client_analytics acme --month 2026-11 --json"

    def add_arguments(self, parser):
        self.add_client_argument(parser)
        parser.add_argument("--month", help="YYYY-MM (default: the current month, UTC).")

    def run(self, **options):
        month = month_option(options["month"])
        figures = client_month_figures(get_client(options["client"]), month)
        return Result(figures.as_dict(), describe(figures))
