"""The console's dashboard: what needs staff attention, in a constant number of aggregate queries.

Every figure about clients is narrowed to the clients the staff member may see (`staff.scoping`);
platform-wide figures (staff sign-ins, the cleanup schedule) are shown only to platform-wide roles,
as `scope()` shows rows of no client only to them. The invitation trends and seats come from the
summary the invitations' trigger keeps in the writing transaction (`reports.models`); every other
query is an aggregate on an index (see docs/console.md and `bench/dashboard.py`), so the page costs
the same number of queries at 10 clients or 100,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Count, F, FloatField, Q, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, NullIf, TruncWeek
from django.utils import timezone

from audit.models import AuditEvent
from clients.models import Client
from config.routers import read_alias
from invitations.models import Invitation
from reports.models import ClientSeats, ClientTally, InvitationDaily, PlatformDaily
from staff.scoping import granted_client_ids
from vault.models import Secret

WEEKS = 12
NEAREST_LIMIT = 10  # clients shown on the seats chart
LISTED = 10  # invitations and secrets listed under their count
INVITATIONS_EXPIRING_WITHIN = timedelta(hours=48)
SECRETS_EXPIRING_WITHIN = timedelta(days=30)
SIGN_INS_WITHIN = timedelta(hours=24)
# docs/scheduling.md asks for a run every 15 minutes to an hour: two hours without one is a missed schedule.
CLEANUP_OVERDUE_AFTER = timedelta(hours=2)
CLEANUP_ACTION = "invitation.cleanup"  # the summary event each completed cleanup_invitations run records
SIGN_IN_FAILED, LOCKED_OUT = "staff.login_failed", "staff.locked_out"


@dataclass(frozen=True)
class Week:
    start: datetime
    issued: int = 0
    redeemed: int = 0
    expired: int = 0
    revoked: int = 0


@dataclass(frozen=True)
class TierCount:
    tier: str
    by_status: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


@dataclass(frozen=True)
class SeatUse:
    client: Client
    seats: int
    limit: int

    @property
    def percent(self) -> int:
        return round(self.seats * 100 / self.limit) if self.limit else 100


@dataclass(frozen=True)
class Cleanup:
    last_run: datetime | None
    overdue: bool


@dataclass
class Dashboard:
    now: datetime
    platform_wide: bool
    clients_by_tier: list[TierCount] = field(default_factory=list)
    weeks: list[Week] = field(default_factory=list)
    nearest_seat_limit: list[SeatUse] = field(default_factory=list)
    expiring_invitations: int = 0
    expiring_invitations_listed: list[Invitation] = field(default_factory=list)
    expiring_secrets: int = 0
    expiring_secrets_listed: list[Secret] = field(default_factory=list)
    failed_sign_ins: int | None = None  # None: not shown to this user (platform-wide figure)
    lockouts: int | None = None
    cleanup: Cleanup | None = None

    @property
    def clients(self) -> int:
        return sum(row.total for row in self.clients_by_tier)

    @property
    def clients_by_status(self) -> dict[str, int]:
        totals = dict.fromkeys(Client.Status.values, 0)
        for row in self.clients_by_tier:
            for status, count in row.by_status.items():
                totals[status] += count
        return totals


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of the week holding `moment`: weeks are ISO weeks in UTC, as PostgreSQL's date_trunc."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC) - timedelta(days=moment.weekday())


class Scope:
    """The clients a staff member may see, as a filter: nothing for platform-wide roles, else the granted ids."""

    def __init__(self, user):
        self.client_ids = granted_client_ids(user)
        self.db = read_alias()  # the replica when one is configured (docs/scaling.md)

    @property
    def platform_wide(self) -> bool:
        return self.client_ids is None

    def __call__(self, queryset, column: str = "client_id"):
        queryset = queryset.using(self.db)
        return queryset if self.client_ids is None else queryset.filter(**{f"{column}__in": self.client_ids})


def dashboard(user, *, now: datetime | None = None) -> Dashboard:
    """Every figure of the console's index for `user`: ten queries whatever the data; a scoped user's
    figures take nine (their granted clients read first, no platform-wide figures), none of them
    when they hold no client."""
    now = now or timezone.now()
    scope = Scope(user)
    board = Dashboard(now=now, platform_wide=scope.platform_wide)
    if scope.client_ids == []:
        return _empty(board, now)
    board.clients_by_tier = _clients_by_tier(scope)
    board.weeks = _weeks(scope, now)
    board.nearest_seat_limit = _nearest_seat_limit(scope)
    board.expiring_invitations, board.expiring_invitations_listed = _listed_with_total(
        scope(Invitation.objects)
        .filter(status=Invitation.Status.PENDING, expires_at__gt=now, expires_at__lte=now + INVITATIONS_EXPIRING_WITHIN)
        .select_related("client", "application")
        .order_by("expires_at", "code")
    )
    board.expiring_secrets, board.expiring_secrets_listed = _listed_with_total(
        scope(Secret.objects)
        .filter(is_active=True, expires_at__gt=now, expires_at__lte=now + SECRETS_EXPIRING_WITHIN)
        .select_related("client")
        .order_by("expires_at", "name")
    )
    if board.platform_wide:
        sign_ins = (
            AuditEvent.objects.using(scope.db)
            .filter(action__in=[SIGN_IN_FAILED, LOCKED_OUT], occurred_at__gt=now - SIGN_INS_WITHIN)
            .aggregate(
                failed=Count("id", filter=Q(action=SIGN_IN_FAILED)), lockouts=Count("id", filter=Q(action=LOCKED_OUT))
            )
        )
        board.failed_sign_ins, board.lockouts = sign_ins["failed"], sign_ins["lockouts"]
        last = (
            AuditEvent.objects.using(scope.db)
            .filter(action=CLEANUP_ACTION, occurred_at__lte=now)
            .order_by("-occurred_at")
            .values_list("occurred_at", flat=True)
            .first()
        )
        board.cleanup = Cleanup(last_run=last, overdue=last is None or now - last > CLEANUP_OVERDUE_AFTER)
    return board


def _empty(board: Dashboard, now: datetime) -> Dashboard:
    first = week_start(now) - timedelta(weeks=WEEKS - 1)
    board.weeks = [Week(first + timedelta(weeks=i)) for i in range(WEEKS)]
    return board


def _clients_by_tier(scope: Scope) -> list[TierCount]:
    """Clients per tier and status: platform-wide, the tally the clients' trigger keeps (one row per tier and
    status, `reports.models.ClientTally`); scoped, a count over the granted clients."""
    if scope.platform_wide:
        rows = (
            ClientTally.objects.using(scope.db)
            .filter(clients__gt=0)
            .order_by("tier__rank", "tier__name", "status")
            .values_list("tier__name", "status", "clients")
        )
    else:
        rows = (
            scope(Client.objects, "id")
            .order_by("tier__rank", "tier__name", "status")
            .values_list("tier__name", "status")
            .annotate(count=Count("id"))
        )
    tiers: dict[str, dict[str, int]] = {}
    for tier, status, count in rows:
        tiers.setdefault(tier, dict.fromkeys(Client.Status.values, 0))[status] = count
    return [TierCount(tier, by_status) for tier, by_status in tiers.items()]


def _weeks(scope: Scope, now: datetime) -> list[Week]:
    """Invitations issued, redeemed, expired and revoked per week, the current week last.

    Read from the summary the invitations' trigger keeps (`reports.models.InvitationDaily`: per client
    and UTC day, issued by `created_at`, redeemed/revoked/expired by `finished_at`), summed per day:
    at most 84 rows back whatever the number of invitations. A platform-wide user reads its sum over
    every client (`PlatformDaily`, 16 rows a day), not a row per client and day. Pending invitations already past their
    expiry that the cleanup has not yet marked are counted live, in the week they lapsed (by
    `expires_at`, a range scan of the partial index `invitation_pending_expiry`, which holds only
    pending ones). Invitations the cleanup purged after the retention period stay in the history.
    """
    first = week_start(now) - timedelta(weeks=WEEKS - 1)
    counts: dict[datetime, dict[str, int]] = {first + timedelta(weeks=i): {} for i in range(WEEKS)}

    def add(week, kind, count):
        if week in counts and count:  # a day after `now` (clock skew) falls outside the chart
            counts[week][kind] = counts[week].get(kind, 0) + count

    summary = PlatformDaily.objects.using(scope.db) if scope.platform_wide else scope(InvitationDaily.objects)
    days = (
        summary.filter(day__gte=first.date(), day__lte=now.astimezone(UTC).date())
        .order_by()
        .values_list("day")
        .annotate(Sum("issued"), Sum("redeemed"), Sum("expired"), Sum("revoked"))
    )
    for day, *figures in days:
        week = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=day.weekday())
        for kind, count in zip(("issued", "redeemed", "expired", "revoked"), figures, strict=True):
            add(week, kind, count)
    overdue = scope(Invitation.objects).filter(
        status=Invitation.Status.PENDING, expires_at__gte=first, expires_at__lte=now
    )
    for week, count in (
        overdue.annotate(week=TruncWeek("expires_at", tzinfo=UTC)).order_by().values_list("week").annotate(Count("id"))
    ):
        add(week, "expired", count)
    return [Week(start, **kinds_) for start, kinds_ in counts.items()]


def _nearest_seat_limit(scope: Scope) -> list[SeatUse]:
    """The clients whose seats (as `invitations.selectors.seats_used` counts them) are closest to their tier's limit.

    Read from the summary the invitations' trigger keeps (`reports.models.ClientSeats`, one row per
    client), joined to the client and its tier: one query, whatever the number of invitations.
    Platform-wide, only each tier's fullest clients are candidates (within a tier the share orders as
    the seats): the top ten of every tier, read on the index `clientseats_tier_seats`, whatever the
    number of clients.
    """
    limit = NullIf(F("client__tier__max_users"), 0)
    seats = scope(ClientSeats.objects)
    if scope.platform_wide:
        seats = seats.filter(client_id__in=RawSQL(TIER_TOPS, [NEAREST_LIMIT]))  # noqa: S611 - constant SQL
    top = (
        seats.filter(seats__gt=0)
        .select_related("client__tier")
        # A tier allowing no users makes any seat 'over the limit': its share is NULL, sorted first.
        .annotate(share=Cast("seats", FloatField()) / Cast(limit, FloatField()))
        .order_by(F("share").desc(nulls_first=True), "client_id")[:NEAREST_LIMIT]
    )
    return [SeatUse(row.client, row.seats, row.client.tier.max_users) for row in top]


# Each tier's NEAREST_LIMIT fullest clients, in the index's order (tier, seats DESC, client).
TIER_TOPS = """
    SELECT top.client_id FROM clients_tier tier
    CROSS JOIN LATERAL (
        SELECT s.client_id FROM reports_clientseats s
         WHERE s.tier_id = tier.code AND s.seats > 0
         ORDER BY s.seats DESC, s.client_id
         LIMIT %s) top
"""


def _listed_with_total(queryset) -> tuple[int, list]:
    """The first rows of `queryset` and how many there are in all: the count on the index alone, then the rows."""
    return queryset.order_by().count(), list(queryset[:LISTED])
