"""A client's month in figures: invitations by application, redemption, seats and tenant API usage.

`client_month_figures(client, month)` is the one function to show them anywhere (the client page,
`client_analytics`); `month_figures(clients, month)` computes them for a batch of clients in a
constant number of queries (`usage_report` streams every client through it, batch by batch).
Months are calendar months in UTC, as the API meters its days.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db.models import (
    Aggregate,
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    Q,
    Sum,
    When,
)
from django.utils import timezone

from api.models import Usage
from api.selectors import month_bounds
from clients.models import ApiKey, Application, Client
from config.errors import InvalidInput, excerpt
from config.routers import read_alias
from invitations.models import Invitation

MONTH = re.compile(r"(\d{4})-(\d{2})")
FIRST_YEAR = 2000
BATCH = 2000  # clients per batch of usage_report: constant memory, a handful of queries each


def parse_month(text: str | None, *, today: date | None = None) -> date:
    """'2026-11' → date(2026, 11, 1). InvalidInput (invalid_month) for anything but YYYY-MM from 2000 to this month."""
    text = (text or "").strip()
    today = today or timezone.now().date()
    if not MONTH.fullmatch(text) or not 1 <= int(text[5:]) <= 12:
        raise InvalidInput(
            f"Give the month as YYYY-MM, e.g. {today:%Y-%m}, not '{excerpt(text)}'.", code="invalid_month"
        )
    start, _ = month_bounds(text)
    if start.year < FIRST_YEAR or start > today:
        raise InvalidInput(
            f"The month {text} is outside {FIRST_YEAR}-01 to {today:%Y-%m} (this month, UTC).", code="invalid_month"
        )
    return start


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def previous_month(month: date) -> date:
    return (month - timedelta(days=1)).replace(day=1)


class Median(Aggregate):
    """PostgreSQL's percentile_cont(0.5): the median of an interval (or number), NULL over no rows."""

    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()


@dataclass
class InvitationFigures:
    issued: int = 0  # created in the month
    redeemed: int = 0  # every use taken (accepted) in the month
    expired: int = 0  # lapsed in the month: marked by the cleanup, or past expiry and not yet marked
    revoked: int = 0  # revoked in the month
    issued_then_redeemed: int = 0  # of those issued in the month, how many are accepted by now
    median_time_to_redeem: timedelta | None = None  # created → accepted, over those redeemed in the month

    @property
    def redemption_rate(self) -> float | None:
        """The share of the month's invitations that were redeemed (by now); None when none was issued."""
        return round(self.issued_then_redeemed / self.issued, 4) if self.issued else None

    def as_dict(self) -> dict:
        data = asdict(self)
        median = data.pop("median_time_to_redeem")
        return data | {
            "redemption_rate": self.redemption_rate,
            "median_hours_to_redeem": round(median.total_seconds() / 3600, 2) if median is not None else None,
        }


@dataclass
class ApiUsage:
    requests: int = 0
    by_status_class: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Usage.StatusClass.values, 0))
    by_key: dict[str, int] = field(default_factory=dict)  # key prefix → requests


@dataclass
class MonthFigures:
    """One client's figures for one month. Seats are as they stand now (a count, not a history)."""

    client: Client
    month: date
    invitations: InvitationFigures = field(default_factory=InvitationFigures)
    by_application: dict[str, InvitationFigures] = field(default_factory=dict)  # app_code → figures
    seats_used: int = 0
    seats_limit: int = 0
    api: ApiUsage = field(default_factory=ApiUsage)
    # Finished invitations are purged after FLOWS_INVITATION_RETENTION_DAYS: an older month is incomplete.
    complete: bool = True

    def as_dict(self) -> dict:
        return {
            "client": self.client.code,
            "month": f"{self.month:%Y-%m}",
            "complete": self.complete,
            "invitations": self.invitations.as_dict(),
            "by_application": {code: figures.as_dict() for code, figures in self.by_application.items()},
            "seats": {"used": self.seats_used, "limit": self.seats_limit},
            "api": {
                "requests": self.api.requests,
                "by_status_class": self.api.by_status_class,
                "by_key": self.api.by_key,
            },
        }


def _invitation_counts(month: date, now: datetime) -> dict:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = min(datetime.combine(next_month(month), datetime.min.time(), tzinfo=UTC), now)
    created = Q(created_at__gte=start, created_at__lt=end)
    finished = Q(finished_at__gte=start, finished_at__lt=end)
    accepted, pending = Q(status=Invitation.Status.ACCEPTED), Q(status=Invitation.Status.PENDING)
    lapsed = pending & Q(expires_at__gte=start, expires_at__lt=end)
    redeemed = accepted & finished
    return {
        "in_month": created | (finished & ~pending) | lapsed,
        "issued": Count("id", filter=created),
        "redeemed": Count("id", filter=redeemed),
        "expired": Count("id", filter=(Q(status=Invitation.Status.EXPIRED) & finished) | lapsed),
        "revoked": Count("id", filter=Q(status=Invitation.Status.REVOKED) & finished),
        "issued_then_redeemed": Count("id", filter=created & accepted),
        "median_time_to_redeem": Median(
            ExpressionWrapper(F("accepted_at") - F("created_at"), output_field=DurationField()), filter=redeemed
        ),
    }


def month_figures(
    clients: Iterable[Client], month: date, *, now: datetime | None = None
) -> dict[uuid.UUID, MonthFigures]:
    """Figures of `clients` (with their tier loaded) for `month`, by client id: six queries, however many clients."""
    now = now or timezone.now()
    clients = list(clients)
    ids = [client.pk for client in clients]
    figures = {
        client.pk: MonthFigures(client=client, month=month, seats_limit=client.tier.max_users) for client in clients
    }
    # Nothing finished on or after the month's first day has been purged yet: its figures are whole.
    complete = datetime.combine(month, datetime.min.time(), tzinfo=UTC) >= now - timedelta(
        days=settings.FLOWS_INVITATION_RETENTION_DAYS
    )
    for one in figures.values():
        one.complete = complete
    if not ids:
        return figures

    db = read_alias()  # the replica when one is configured (lag-tolerant staff reads, docs/scaling.md)
    for client_id, app_code in (
        Application.objects.using(db)
        .filter(client_id__in=ids)
        .order_by("app_code")
        .values_list("client_id", "app_code")
    ):
        figures[client_id].by_application[app_code] = InvitationFigures()

    counts = _invitation_counts(month, now)
    in_month = Invitation.objects.using(db).filter(counts.pop("in_month"), client_id__in=ids).order_by()
    for row in in_month.values("client_id", "application__app_code").annotate(**counts):
        client_id, app_code = row.pop("client_id"), row.pop("application__app_code")
        figures[client_id].by_application[app_code] = InvitationFigures(**row)
    for row in in_month.values("client_id").annotate(**counts):
        client_id = row.pop("client_id")
        figures[client_id].invitations = InvitationFigures(**row)

    seats = Sum(
        Case(When(status=Invitation.Status.PENDING, then="max_uses"), default="used_count", output_field=IntegerField())
    )
    for client_id, used in (
        Invitation.objects.using(db).filter(client_id__in=ids).order_by().values_list("client_id").annotate(seats=seats)
    ):
        figures[client_id].seats_used = used or 0

    start, end = month, next_month(month)
    usage = (
        Usage.objects.using(db)
        .filter(client_id__in=ids, day__gte=start, day__lt=end)
        .order_by()
        .values_list("client_id", "api_key_id", "status_class")
        .annotate(requests=Sum("count"))
    )
    key_ids = set()
    rows = list(usage)
    for client_id, key_id, status_class, requests in rows:
        api = figures[client_id].api
        api.requests += requests
        api.by_status_class[status_class] += requests
        key_ids.add(key_id)
    prefixes = dict(ApiKey.objects.using(db).filter(pk__in=key_ids).values_list("pk", "prefix")) if key_ids else {}
    for client_id, key_id, _, requests in rows:
        by_key = figures[client_id].api.by_key
        prefix = prefixes.get(key_id, str(key_id))
        by_key[prefix] = by_key.get(prefix, 0) + requests
    return figures


def client_month_figures(client: Client, month: date | str, *, now: datetime | None = None) -> MonthFigures:
    """One client's figures for one month (a `date` in it, or 'YYYY-MM'): what the client page and
    `client_analytics` show. `MonthFigures.as_dict()` gives them as plain data.

    For the client page's current and last month::

        this = client_month_figures(client, timezone.now().date())
        last = client_month_figures(client, previous_month(this.month))
    """
    month = parse_month(month) if isinstance(month, str) else month.replace(day=1)
    return month_figures([client], month, now=now)[client.pk]


def every_client_month(month: date, *, clients=None, batch: int = BATCH) -> Iterator[MonthFigures]:
    """Every client's figures for `month` in code order, computed `batch` clients at a time (keyset by code)."""
    queryset = (
        (clients if clients is not None else Client.objects.using(read_alias())).select_related("tier").order_by("code")
    )
    after = ""
    while True:
        chunk = list(queryset.filter(code__gt=after)[:batch])
        if not chunk:
            return
        figures = month_figures(chunk, month)
        yield from (figures[client.pk] for client in chunk)
        after = chunk[-1].code
