"""`{% dashboard %}`: the console index's figures and charts for the signed-in staff member."""

from __future__ import annotations

from django import template

from clients.models import Client
from reports import dashboard as figures
from reports.charts import Bar, Series, grouped_bars, stacked_rows

register = template.Library()


@register.inclusion_tag("reports/dashboard.html", takes_context=True)
def dashboard(context):
    request = context["request"]
    board = figures.dashboard(request.user)
    labels = [f"{week.start:%d %b}" for week in board.weeks]
    weekly = grouped_bars(
        "chart-invitations",
        f"Invitations per week, last {figures.WEEKS} weeks (weeks start on Monday, UTC)",
        labels,
        [
            Series("issued", "issued", [week.issued for week in board.weeks]),
            Series("redeemed", "redeemed", [week.redeemed for week in board.weeks]),
            Series("expired", "expired", [week.expired for week in board.weeks]),
            Series("revoked", "revoked", [week.revoked for week in board.weeks]),
        ],
    )
    status_labels = dict(Client.Status.choices)
    tiers = stacked_rows(
        "chart-tiers",
        "Clients by tier and status",
        [
            Bar(
                row.tier,
                [(status, f"{status_labels[status].lower()} client(s)", n) for status, n in row.by_status.items()],
                note=f"{row.total:,}",
            )
            for row in board.clients_by_tier
        ],
    )
    # Each bar is a client's share of its own tier's limit, so clients of different tiers compare.
    seats = None
    if board.nearest_seat_limit:
        seats = stacked_rows(
            "chart-seats",
            "Seats used against the tier's limit: the clients closest to it",
            [
                Bar(
                    use.client.code,
                    [("seats-over" if use.seats > use.limit else "seats", "% of the tier's seats", use.percent)],
                    note=f"{use.seats:,} / {use.limit:,} ({use.percent}%)",
                )
                for use in board.nearest_seat_limit
            ],
            scale=max(100, *(use.percent for use in board.nearest_seat_limit)),
            marker=100,
            marker_label="limit",
        )
    return {
        "board": board,
        "weekly_chart": weekly,
        "tiers_chart": tiers,
        "seats_chart": seats,
        "statuses": status_labels,
        "cleanup_overdue_hours": int(figures.CLEANUP_OVERDUE_AFTER.total_seconds() // 3600),
        "request": request,
    }
