"""What does the console's dashboard cost at scale? Its query count and time, large against small, side by side.

Run by hand, never from the test suite:

    make bench-dashboard                    # or: .venv/bin/python bench/dashboard.py
    .venv/bin/python bench/dashboard.py --clients 100000 --invitations 1000000 --rounds 7

It works in two databases of its own (`flows_bench_dashboard` and `flows_bench_dashboard_ref`,
created by the owner role on the same server and migrated like the real one), loaded with COPY:

  large      --clients (100,000) clients, one application and one secret each, and
             --invitations (1,000,000) invitations over the last 180 days;
  reference  --ref-clients (1,000) and --ref-invitations (10,000), generated the same way.

Invitations are spread evenly over the 180 days: 40% redeemed, 10% revoked, 20% expired (marked
by the cleanup), 30% pending (some expiring within 48 hours); 5% of the secrets expire within 30
days. Each round computes the dashboard (`reports.dashboard.dashboard`, every figure of the index)
once on each database, alternating which goes first, for a platform-wide user and for a user granted
ten clients. Medians per path are printed, the ratio large/reference, the query count, and each
query's median time in the large database. In the same rounds it times clients by tier, the invitation
trends and the seats alone three ways, side by side: as the dashboard reads them now (platform-wide: the
platform rows the triggers keep, reports/migrations/0002), from the per-client summary rows
(`per_client_trends`, the code before 0002) and as live aggregates over the invitations
(`previous_trends`, before 0001), and checks that they give the same figures. The data stays for
the next run (loading is skipped when the sizes match); `--drop` removes both databases.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import drop_database, say, setup_django, use_database

DAYS = 180
SCOPED_GRANTS = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="flows_bench_dashboard")
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--invitations", type=int, default=1_000_000)
    parser.add_argument("--ref-clients", type=int, default=1_000)
    parser.add_argument("--ref-invitations", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--reload", action="store_true", help="Regenerate the data even when the sizes match.")
    parser.add_argument("--drop", action="store_true", help="Drop both benchmark databases at the end.")
    return parser.parse_args()


# --- Databases -----------------------------------------------------------------------------------


def switch_to(name: str) -> None:
    """Point every alias at database `name` (created if missing); the next query reconnects."""
    from django.conf import settings  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415

    connections.close_all()
    use_database(name)
    for alias in settings.DATABASES:
        connections[alias].settings_dict["NAME"] = name


def migrate() -> None:
    from django.core.management import call_command  # noqa: PLC0415

    call_command("migrate", verbosity=0, interactive=False)


def load(*, clients: int, invitations: int, seed: int, reload: bool) -> None:
    """Clients, applications, secrets and invitations with COPY, as the owner, unless already there."""
    from django.db import connections, transaction  # noqa: PLC0415

    from clients.dbroles import APPEND_ONLY_TABLES  # noqa: PLC0415
    from clients.models import Application, Client  # noqa: PLC0415
    from invitations.models import Invitation  # noqa: PLC0415
    from vault.models import Secret  # noqa: PLC0415

    owner = connections["default"]
    tables = [Client._meta.db_table, Application._meta.db_table, Secret._meta.db_table, Invitation._meta.db_table]
    client_table, app_table, secret_table, invitation_table = tables
    with transaction.atomic(using="default"), owner.cursor() as cursor:
        # The owner is subject to the FORCE'd RLS and has no policy: count with FORCE lifted, then roll back.
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        cursor.execute(f"SELECT (SELECT count(*) FROM {client_table}), (SELECT count(*) FROM {invitation_table})")
        have = cursor.fetchone()
        transaction.set_rollback(True, using="default")
    if have == (clients, invitations) and not reload:
        say(f"  data present: {clients:,} clients, {invitations:,} invitations (--reload regenerates)")
        return

    rng = random.Random(seed)
    now = datetime.now(UTC)
    started = time.perf_counter()
    with transaction.atomic(using="default"), owner.cursor() as cursor:
        # COPY FROM is refused under RLS: FORCE lifted in this transaction only (re-forced before commit).
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        # Everything referring to a client goes too; the append-only tables refuse TRUNCATE even from the
        # owner: their triggers are off in this transaction only.
        for table in APPEND_ONLY_TABLES:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        # The platform-wide summaries refer to no client (TRUNCATE fires no trigger): emptied with them.
        cursor.execute("TRUNCATE reports_clienttally, reports_platformdaily")
        for table in APPEND_ONLY_TABLES:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        ids = [(uuid.UUID(int=rng.getrandbits(128), version=4), uuid.UUID(int=rng.getrandbits(128), version=4))
               for _ in range(clients)]  # fmt: skip
        tiers = ["free", "pro", "enterprise"]
        statuses = ["active"] * 8 + ["suspended", "deactivated"]
        with cursor.cursor.copy(
            f"COPY {client_table} (id, code, legal_name, domain, region, status, created_at, updated_at, tier_id) "
            "FROM STDIN"
        ) as copy:
            for n, (client_id, _) in enumerate(ids):
                code = f"bench-{n:06d}"
                copy.write_row((client_id, code, f"Bench {n}", f"{code}.bench.test", "EU", statuses[n % 10], now, now,
                                tiers[n % 3]))  # fmt: skip
        with cursor.cursor.copy(
            f"COPY {app_table} (id, client_id, app_code, name, configuration, features, status, created_at, "
            "updated_at) FROM STDIN"
        ) as copy:
            for client_id, app_id in ids:
                copy.write_row((app_id, client_id, "onboarding", "Onboarding", "{}", "{}", "enabled", now, now))
        with cursor.cursor.copy(
            f"COPY {secret_table} (id, client_id, name, provider, secret_type, ciphertext, data_key_version, "
            "description, tags, is_active, expires_at, usage_count, created_at, updated_at) FROM STDIN"
        ) as copy:
            for n, (client_id, _) in enumerate(ids):
                expires = now + timedelta(days=10 if n % 20 == 0 else 400)
                copy.write_row((uuid.uuid4(), client_id, "slack-api_key", "slack", "api_key", b"x", 1, "", "{}", True,
                                expires, 0, now, now))  # fmt: skip
        say(f"  {clients:,} clients, applications and secrets copied")
        columns = (
            "id, client_id, application_id, code, token_hash, status, max_uses, used_count, permissions, "
            "restrictions, expires_at, email_hash, kid, created_by, created_at, resend_count, revoked_by, "
            "revoke_reason, accepted_at, revoked_at, finished_at"
        )
        step = timedelta(days=DAYS) / invitations
        start = now - timedelta(days=DAYS)
        with cursor.cursor.copy(f"COPY {invitation_table} ({columns}) FROM STDIN") as copy:
            for n in range(invitations):
                client_id, app_id = ids[rng.randrange(clients)]  # scattered over the heap, as in production
                copy.write_row(
                    invitation_row(n, created=start + step * n, now=now, rng=rng, client_id=client_id, app_id=app_id)
                )
                if (n + 1) % 250_000 == 0:
                    say(f"  {n + 1:,} invitations copied ({time.perf_counter() - started:.0f} s)")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE waits for no deferred FK check
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    with owner.cursor() as cursor:
        # The dashboard's summary, which the invitations' trigger filled during the COPY, too.
        for table in [*tables, "reports_invitationdaily", "reports_clientseats", "reports_clienttally",
                      "reports_platformdaily"]:  # fmt: skip
            cursor.execute(f"VACUUM ANALYZE {table}")
    say(f"  loaded in {time.perf_counter() - started:.1f} s")


def invitation_row(n: int, *, created: datetime, now: datetime, rng: random.Random, client_id, app_id) -> tuple:
    """The n-th invitation: 40% redeemed, 10% revoked, 20% expired (pending while not lapsed), 30% pending."""
    kind = n % 10
    accepted = revoked = finished = None
    used, expires = 0, created + timedelta(days=7)
    if kind < 4:
        status, used = "accepted", 1
        accepted = finished = min(created + timedelta(hours=rng.randint(1, 72)), now)
    elif kind == 4:
        status = "revoked"
        revoked = finished = min(created + timedelta(hours=rng.randint(1, 72)), now)
    elif kind < 7 and expires + timedelta(minutes=15) <= now:
        status, finished = "expired", expires + timedelta(minutes=15)
    else:
        status = "pending"
        if kind >= 7:
            expires = now + timedelta(hours=rng.randint(1, 24 * 30))
    who = "bench" if revoked else ""
    return (uuid.uuid4(), client_id, app_id, f"INV-{n:08d}", hashlib.sha256(b"%d" % n).hexdigest(), status, 1, used,
            "{}", "{}", expires, "", "bench", "bench", created, 0, who, who, accepted, revoked, finished)  # fmt: skip


def users():
    """A platform-wide user (unsaved: a superuser needs no row) and a staff user granted ten clients."""
    from django.contrib.auth.models import User  # noqa: PLC0415

    from clients.models import Client  # noqa: PLC0415
    from staff import services  # noqa: PLC0415

    platform = User(username="bench-platform", is_superuser=True, is_staff=True, is_active=True)
    scoped, created = User.objects.get_or_create(username="bench-scoped", defaults={"is_staff": True})
    if created:
        for client in Client.objects.order_by("code")[:SCOPED_GRANTS]:
            services.grant_client_access(actor=None, user=scoped, client=client)
    return {"platform-wide": platform, f"scoped ({SCOPED_GRANTS} clients)": User.objects.get(pk=scoped.pk)}


# --- Timing --------------------------------------------------------------------------------------


def timed(user) -> tuple[float, list[tuple[str, float]]]:
    from django.conf import settings  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415

    from reports.dashboard import dashboard  # noqa: PLC0415

    with CaptureQueriesContext(connections[settings.CONSOLE_DB_ALIAS]) as queries:
        began = time.perf_counter()
        dashboard(user)
        elapsed = time.perf_counter() - began
    return elapsed, [(query["sql"], float(query["time"])) for query in queries]


def previous_trends(scope, now):
    """The invitation trends and seats as the dashboard computed them before the summary: live aggregates
    over the invitations (the code of reports/dashboard.py before reports/migrations/0001), kept here
    to time them side by side with the summary and to check that both give the same figures."""
    from django.db.models import Case, Count, F, FloatField, IntegerField, Max, Sum, When  # noqa: PLC0415
    from django.db.models.functions import Cast, NullIf, TruncWeek  # noqa: PLC0415

    from invitations.models import Invitation  # noqa: PLC0415
    from reports.dashboard import WEEKS, week_start  # noqa: PLC0415

    def weekly(queryset, column, *extra):
        return (
            queryset.annotate(week=TruncWeek(column, tzinfo=UTC)).order_by().values_list("week", *extra)
            .annotate(count=Count("id"))
        )  # fmt: skip

    first = week_start(now) - timedelta(weeks=WEEKS - 1)
    invitations = scope(Invitation.objects)
    counts = {first + timedelta(weeks=i): {} for i in range(WEEKS)}

    def add(week, kind, count):
        if week in counts:
            counts[week][kind] = counts[week].get(kind, 0) + count

    for week, count in weekly(invitations.filter(created_at__gte=first, created_at__lte=now), "created_at"):
        add(week, "issued", count)
    finished = invitations.exclude(status="pending").filter(finished_at__gte=first, finished_at__lte=now)
    kinds = {"accepted": "redeemed", "expired": "expired", "revoked": "revoked"}
    for week, status, count in weekly(finished, "finished_at", "status"):
        add(week, kinds[status], count)
    overdue = invitations.filter(status="pending", expires_at__gte=first, expires_at__lte=now)
    for week, count in weekly(overdue, "expires_at"):
        add(week, "expired", count)
    seats = Sum(Case(When(status="pending", then="max_uses"), default="used_count", output_field=IntegerField()))
    top = list(
        scope(Invitation.objects).order_by().values("client_id")
        .annotate(seats=seats, limit=NullIf(Max("client__tier__max_users"), 0)).filter(seats__gt=0)
        .annotate(share=Cast("seats", FloatField()) / Cast("limit", FloatField()))
        .order_by(F("share").desc(nulls_first=True), "client_id").values_list("client_id", "seats")[:10]
    )  # fmt: skip
    weeks = [(start, *(figures.get(k, 0) for k in ("issued", "redeemed", "expired", "revoked")))
             for start, figures in counts.items()]  # fmt: skip
    return weeks, top


def per_client_trends(scope, now):
    """The figures as the dashboard read them from the per-client summary alone (reports/migrations/0001, before
    0002's platform-wide rows): clients counted per tier, the day rows of every client summed, the seats of
    every client joined to its tier and sorted. Kept here to time them side by side with the current code."""
    from django.db.models import Count, F, FloatField, Sum  # noqa: PLC0415
    from django.db.models.functions import Cast, NullIf  # noqa: PLC0415

    from clients.models import Client  # noqa: PLC0415
    from reports.dashboard import WEEKS, week_start  # noqa: PLC0415
    from reports.models import ClientSeats, InvitationDaily  # noqa: PLC0415

    tiers = sorted(
        scope(Client.objects, "id").order_by().values_list("tier__name", "status").annotate(count=Count("id"))
    )
    first = week_start(now) - timedelta(weeks=WEEKS - 1)
    counts = {first + timedelta(weeks=i): [0, 0, 0, 0] for i in range(WEEKS)}
    days = (
        scope(InvitationDaily.objects).filter(day__gte=first.date(), day__lte=now.astimezone(UTC).date())
        .order_by().values_list("day").annotate(Sum("issued"), Sum("redeemed"), Sum("expired"), Sum("revoked"))
    )  # fmt: skip
    for day, *figures in days:
        week = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=day.weekday())
        counts[week] = [a + b for a, b in zip(counts[week], figures, strict=True)]
    limit = NullIf(F("client__tier__max_users"), 0)
    top = list(
        scope(ClientSeats.objects).filter(seats__gt=0)
        .annotate(share=Cast("seats", FloatField()) / Cast(limit, FloatField()))
        .order_by(F("share").desc(nulls_first=True), "client_id").values_list("client_id", "seats")[:10]
    )  # fmt: skip
    return tiers, counts, top


def summary_trends(scope, now):
    """The same figures as the dashboard now reads them (reports.dashboard: platform-wide, the platform rows)."""
    from reports.dashboard import _clients_by_tier, _nearest_seat_limit, _weeks  # noqa: PLC0415

    tiers = sorted((row.tier, status, n) for row in _clients_by_tier(scope) for status, n in row.by_status.items() if n)
    weeks = {w.start: [w.issued, w.redeemed, w.expired, w.revoked] for w in _weeks(scope, now)}
    return tiers, weeks, [(use.client.pk, use.seats) for use in _nearest_seat_limit(scope)]


WAYS = ("live aggregates", "per-client rows", "dashboard now")


def timed_trends(user) -> dict[str, tuple[float, object]]:
    """The clients by tier, invitation trends and seats for `user` computed three ways, each timed; the figures."""
    from django.utils import timezone  # noqa: PLC0415

    from reports.dashboard import Scope  # noqa: PLC0415

    scope, now, result = Scope(user), timezone.now(), {}
    for name, compute in zip(WAYS, (previous_trends, per_client_trends, summary_trends), strict=True):
        began = time.perf_counter()
        figures = compute(scope, now)
        result[name] = (time.perf_counter() - began, figures)
    return result


def same_figures(trends) -> bool:
    """The three ways agree: the live weeks and seats (no tier counts) and the two summaries in full. The live
    weeks also count lapsed-but-unmarked invitations, which neither summary computation above adds, so only
    the seats and the issued/redeemed/revoked series are compared with them."""
    live_weeks, live_top = trends["live aggregates"][1]
    per_client, now = trends["per-client rows"][1], trends["dashboard now"][1]
    if live_top != now[2] or per_client[2] != now[2] or per_client[0] != now[0]:
        return False
    per_client_weeks = {start: [i, r, v] for start, (i, r, _, v) in per_client[1].items()}
    if per_client_weeks != {start: [i, r, v] for start, (i, r, _, v) in now[1].items()}:
        return False
    return {start: [i, r, v] for start, i, r, _, v in live_weeks} == per_client_weeks


def report_trends(users, samples, mismatches) -> None:
    say("")
    say("clients by tier, invitation trends and seats alone (the queries that read rows per client), same rounds:")
    say(f"{'user':<22} {'computed from':<16} {'reference ms':>13} {'large ms':>9} {'large/ref':>10}")
    for who in users:
        for name in WAYS:
            ref_ms = statistics.median(samples[("reference", who, name)]) * 1000
            large_ms = statistics.median(samples[("large", who, name)]) * 1000
            say(f"{who:<22} {name:<16} {ref_ms:>13.1f} {large_ms:>9.1f} {large_ms / ref_ms:>10.1f}")
    say(
        "the three ways give the same figures in every round"
        if not mismatches
        else f"MISMATCH between the ways of computing: {sorted(set(mismatches))}"
    )


def main() -> None:
    args = parse_args()
    large, reference = args.database, f"{args.database}_ref"
    setup_django(reference)
    say(f"reference database {reference}: {args.ref_clients:,} clients, {args.ref_invitations:,} invitations")
    load(clients=args.ref_clients, invitations=args.ref_invitations, seed=args.seed, reload=args.reload)
    ref_users = users()
    switch_to(large)
    migrate()
    say(f"large database {large}: {args.clients:,} clients, {args.invitations:,} invitations")
    load(clients=args.clients, invitations=args.invitations, seed=args.seed, reload=args.reload)
    large_users = users()

    samples = {(db, who): [] for db in ("large", "reference") for who in large_users}
    queries: dict[str, list[list[tuple[str, float]]]] = {who: [] for who in large_users}
    sides = {"large": (large, large_users), "reference": (reference, ref_users)}
    trend_samples: dict[tuple[str, str, str], list[float]] = {}
    mismatches: list[tuple[str, str]] = []
    say(f"{args.rounds} rounds, alternating the order …")
    for round_number in range(args.rounds):
        order = ["large", "reference"] if round_number % 2 == 0 else ["reference", "large"]
        for side in order:
            database, people = sides[side]
            switch_to(database)
            for who, user in people.items():
                timed(user)  # warm the new connection (catalog caches, the user's permissions)
                elapsed, ran = timed(user)
                samples[(side, who)].append(elapsed)
                if side == "large":
                    queries[who].append(ran)
                trends = timed_trends(user)
                if not same_figures(trends):
                    mismatches.append((side, who))
                for name, (seconds, _) in trends.items():
                    trend_samples.setdefault((side, who, name), []).append(seconds)

    say("")
    say(f"{'user':<22} {'queries':>7} {'reference ms':>13} {'large ms':>9} {'large/ref':>10}")
    for who in large_users:
        ref_ms = statistics.median(samples[("reference", who)]) * 1000
        large_ms = statistics.median(samples[("large", who)]) * 1000
        count = len(queries[who][0])
        say(f"{who:<22} {count:>7} {ref_ms:>13.1f} {large_ms:>9.1f} {large_ms / ref_ms:>10.1f}")
    say(
        f"reference: {args.ref_clients:,} clients / {args.ref_invitations:,} invitations; "
        f"large: {args.clients:,} clients / {args.invitations:,} invitations; medians of {args.rounds} rounds"
    )
    report_trends(large_users, trend_samples, mismatches)
    for who in large_users:
        say("")
        say(f"each query at the large size, {who} (median ms):")
        for index, (sql, _) in enumerate(queries[who][0]):
            median = statistics.median(run[index][1] for run in queries[who]) * 1000
            say(f"  {median:>8.1f}  {' '.join(sql.split())[:110]}")
    if args.drop:
        drop_database(large)
        drop_database(reference)


if __name__ == "__main__":
    main()
