"""Scrape-time metrics read from the database as the console role: business figures and the database's state.

Computed from a few aggregate queries at each scrape, not counted in the process: every gunicorn
worker answers the same, a restart loses nothing, and the numbers are the database's own. Per-client
series exist only for the `FLOWS_METRICS_TOP_CLIENTS` busiest (or fullest) clients; every client
counts in its tier's aggregate (docs/monitoring.md, "Cardinality").
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.models import Usage
from audit.models import AuditEvent
from clients.models import Application, Client, Tier
from invitations.models import Invitation

log = logging.getLogger(__name__)

# A client is "near its seat limit" from this share of its tier's max_users on.
NEAR_SEAT_LIMIT = 0.9
# "Expiring soon": pending invitations whose expiry falls within this window.
EXPIRING_WINDOW = timedelta(hours=24)
INVITATION_STATUSES = list(Invitation.Status.values)
STATUS_CLASSES = list(Usage.StatusClass.values)
# Audit actions counted (an index-only count on auditevent_action_time) and the latest ones read.
COUNTED_ACTIONS = {"staff.login_failed": "sign_in_failures", "staff.locked_out": "lockouts"}
LATEST_ACTIONS = ("audit.checkpointed", "audit.verified", "invitation.cleanup")

_INVITATION, _CLIENT, _TIER = Invitation._meta.db_table, Client._meta.db_table, Tier._meta.db_table
_APPLICATION, _USAGE, _AUDIT = Application._meta.db_table, Usage._meta.db_table, AuditEvent._meta.db_table

# One scan of the invitations, grouped per client, application and status; everything else is
# derived from that in the same statement (a CTE used more than once is computed once).
# `kind` says which metric a row feeds: tier aggregates, the busiest clients' applications, the
# fullest clients' seats, and per tier the number of clients near their seat limit.
_INVITATIONS_SQL = f"""
WITH per_app AS (
    SELECT client_id, application_id, status, count(*) AS n,
           count(*) FILTER (WHERE status = 'pending' AND expires_at <= %(soon)s) AS expiring,
           sum(CASE WHEN status = 'pending' THEN max_uses ELSE used_count END) AS seats
    FROM {_INVITATION} GROUP BY client_id, application_id, status
), per_client AS (
    SELECT p.client_id, c.code, c.tier_id, t.max_users, sum(p.n) AS n, sum(p.seats) AS seats
    FROM per_app p JOIN {_CLIENT} c ON c.id = p.client_id JOIN {_TIER} t ON t.code = c.tier_id
    GROUP BY p.client_id, c.code, c.tier_id, t.max_users
), busiest AS (
    SELECT client_id, code FROM per_client ORDER BY n DESC, code LIMIT %(top)s
), fullest AS (
    SELECT * FROM per_client ORDER BY seats::float / greatest(max_users, 1) DESC, code LIMIT %(top)s
)
SELECT 'tier', pc.tier_id, '', p.status, sum(p.n)::bigint, sum(p.expiring)::bigint, 0
    FROM per_app p JOIN per_client pc USING (client_id) GROUP BY pc.tier_id, p.status
UNION ALL
SELECT 'client', b.code, coalesce(a.app_code, ''), p.status, p.n, p.expiring, 0
    FROM per_app p JOIN busiest b USING (client_id) LEFT JOIN {_APPLICATION} a ON a.id = p.application_id
UNION ALL
SELECT 'seats', code, tier_id, '', seats::bigint, max_users, 0 FROM fullest
UNION ALL
SELECT 'near', tier_id, '', '', count(*), 0, 0 FROM per_client
    WHERE seats >= %(near)s * max_users GROUP BY tier_id
"""  # noqa: S608 - table names from the models, values are parameters

# Today's API counters (UTC day: the counters restart at midnight), on the index api_usage_day.
_API_SQL = f"""
WITH today AS (
    SELECT client_id, status_class, sum(count) AS n, sum(rate_limited) AS limited
    FROM {_USAGE} WHERE day = %(day)s GROUP BY client_id, status_class
), busiest AS (
    SELECT client_id FROM today GROUP BY client_id ORDER BY sum(n) DESC, client_id LIMIT %(top)s
)
SELECT 'tier', c.tier_id, t.status_class, sum(t.n)::bigint, sum(t.limited)::bigint
    FROM today t JOIN {_CLIENT} c ON c.id = t.client_id GROUP BY c.tier_id, t.status_class
UNION ALL
SELECT 'client', c.code, t.status_class, t.n::bigint, t.limited::bigint
    FROM today t JOIN busiest b USING (client_id) JOIN {_CLIENT} c ON c.id = t.client_id
"""  # noqa: S608 - table names from the models, values are parameters

# The newest event of each action: one probe of auditevent_action_time per action. A verification
# counts when it covered every chain; a one-client run says nothing of the others.
_LATEST_SQL = f"""
SELECT a.action, e.occurred_at, e.changes
FROM unnest(%(actions)s::text[]) AS a(action)
CROSS JOIN LATERAL (
    SELECT occurred_at, changes FROM {_AUDIT}
    WHERE action = a.action AND (a.action <> 'audit.verified' OR changes ->> 'scope' = 'all')
    ORDER BY occurred_at DESC LIMIT 1
) e
"""  # noqa: S608 - table names from the models, values are parameters

_COUNTS_SQL = f"""
SELECT action, count(*) FROM {_AUDIT} WHERE action = ANY(%(actions)s::text[]) GROUP BY action
"""  # noqa: S608 - table names from the models, values are parameters


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels or [])


def pool_metrics() -> list[Metric]:
    """This process's connection pools (DB_POOL_MAX_SIZE), one series per alias whose pool is open."""
    size = _gauge("flows_db_pool_connections", "Connections held by this worker's pool.", ["alias"])
    available = _gauge("flows_db_pool_available", "Idle connections in this worker's pool.", ["alias"])
    limit = _gauge("flows_db_pool_max_size", "The most connections this worker's pool may open.", ["alias"])
    waiting = _gauge("flows_db_pool_requests_waiting", "Requests waiting for a connection of the pool.", ["alias"])
    for alias in (settings.CONSOLE_DB_ALIAS, settings.TENANT_DB_ALIAS):
        # Only a pool already open: asking `connections[alias].pool` would open one just to report it.
        pool = getattr(connections[alias], "_connection_pools", {}).get(alias)
        if pool is None:
            continue
        stats = pool.get_stats()
        size.add_metric([alias], stats.get("pool_size", 0))
        available.add_metric([alias], stats.get("pool_available", 0))
        limit.add_metric([alias], stats.get("pool_max", 0))
        waiting.add_metric([alias], stats.get("requests_waiting", 0))
    return [size, available, limit, waiting]


class DatabaseCollector(Collector):
    """Everything read from the database at scrape time, as the console role (platform-wide by design)."""

    def __init__(self, top_clients: int | None = None):
        self.top = settings.FLOWS_METRICS_TOP_CLIENTS if top_clients is None else top_clients

    def describe(self):
        return []  # nothing is read at registration

    def collect(self):
        started = time.perf_counter()
        up = _gauge("flows_db_up", "1 when the database answered this scrape as the console role, else 0.")
        try:
            families = self._read()
        except DatabaseError as error:
            # The scrape still answers, and says the database did not: alerting needs that series.
            log.warning("metrics: the database did not answer the scrape (%s)", error.__class__.__name__)
            families = []
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        yield up
        yield from families
        yield from pool_metrics()
        took = _gauge("flows_metrics_collect_seconds", "Time this scrape spent reading the database.")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _read(self) -> list[Metric]:
        alias = settings.CONSOLE_DB_ALIAS
        connection = connections[alias]
        connection.ensure_connection()
        families = []
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            ping = _gauge("flows_db_ping_seconds", "Round trip of one trivial query from this worker.")
            ping.add_metric([], time.perf_counter() - started)
            families.append(ping)
        # One snapshot for every figure, and nothing this scrape could write (when the transaction is
        # its own: read-only mode would outlive a savepoint in someone else's).
        outermost = not connection.in_atomic_block
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            if outermost:
                cursor.execute("SET TRANSACTION READ ONLY")
            tiers = self._tiers(cursor)
            families += self._connections(cursor)
            families += self._clients(cursor, tiers)
            families += self._invitations(cursor, tiers)
            families += self._api(cursor, tiers)
            families += self._staff(cursor)
            families += self._jobs(cursor)
        return families

    @staticmethod
    def _tiers(cursor) -> list[str]:
        cursor.execute(f"SELECT code FROM {_TIER} ORDER BY code")  # noqa: S608 - the model's table
        return [code for (code,) in cursor.fetchall()]

    @staticmethod
    def _connections(cursor) -> list[Metric]:
        # pg_stat_database, not pg_stat_activity: the role set-up revokes the latter from PUBLIC (it
        # shows other sessions' statements, values included; docs/tenancy.md).
        cursor.execute(
            "SELECT numbackends, xact_commit, xact_rollback, deadlocks, current_setting('max_connections')::int"
            " FROM pg_stat_database WHERE datname = current_database()"
        )
        backends, commits, rollbacks, deadlocks, maximum = cursor.fetchone()
        connections_ = _gauge("flows_db_connections", "Server connections to this database, every role.")
        connections_.add_metric([], backends)
        limit = _gauge("flows_db_max_connections", "The server's max_connections.")
        limit.add_metric([], maximum)
        transactions = CounterMetricFamily(
            "flows_db_transactions",
            "Transactions in this database since its statistics were reset.",
            labels=["outcome"],
        )
        transactions.add_metric(["commit"], commits)
        transactions.add_metric(["rollback"], rollbacks)
        deadlock = CounterMetricFamily("flows_db_deadlocks", "Deadlocks detected in this database.")
        deadlock.add_metric([], deadlocks)
        return [connections_, limit, transactions, deadlock]

    @staticmethod
    def _clients(cursor, tiers: list[str]) -> list[Metric]:
        cursor.execute(f"SELECT tier_id, status, count(*) FROM {_CLIENT} GROUP BY tier_id, status")  # noqa: S608
        counts = {(tier, status): count for tier, status, count in cursor.fetchall()}
        clients = _gauge("flows_clients", "Clients, by tier and status.", ["tier", "status"])
        for tier in tiers:
            for status in Client.Status.values:
                clients.add_metric([tier, status], counts.get((tier, status), 0))
        return [clients]

    def _invitations(self, cursor, tiers: list[str]) -> list[Metric]:
        cursor.execute(
            _INVITATIONS_SQL,
            {"soon": timezone.now() + EXPIRING_WINDOW, "top": self.top, "near": NEAR_SEAT_LIMIT},
        )
        by_tier = _gauge("flows_invitations", "Invitations stored, by tier and status.", ["tier", "status"])
        expiring = _gauge(
            "flows_invitations_expiring_soon", "Pending invitations expiring within 24 hours, by tier.", ["tier"]
        )
        near = _gauge(
            "flows_clients_near_seat_limit",
            f"Clients whose seats reach {NEAR_SEAT_LIMIT:.0%} of their tier's max_users, by tier.",
            ["tier"],
        )
        client = _gauge(
            "flows_client_invitations",
            "Invitations stored, for the busiest clients, by application and status.",
            ["client", "application", "status"],
        )
        client_expiring = _gauge(
            "flows_client_invitations_expiring_soon",
            "Pending invitations expiring within 24 hours, for the busiest clients, by application.",
            ["client", "application"],
        )
        seats = _gauge(
            "flows_client_seats_used", "Seats held by invitations, for the fullest clients.", ["client", "tier"]
        )
        seat_limit = _gauge(
            "flows_client_seats_limit", "The tier's max_users, for the fullest clients.", ["client", "tier"]
        )
        tier_counts: dict[tuple[str, str], int] = {}
        tier_expiring: dict[str, int] = {}
        near_counts: dict[str, int] = {}
        client_expiring_counts: dict[tuple[str, str], int] = {}
        for kind, key, detail, status, value, other, _ in cursor.fetchall():
            if kind == "tier":
                tier_counts[(key, status)] = value
                tier_expiring[key] = tier_expiring.get(key, 0) + other
            elif kind == "client":
                client.add_metric([key, detail, status], value)
                client_expiring_counts[(key, detail)] = client_expiring_counts.get((key, detail), 0) + other
            elif kind == "seats":
                seats.add_metric([key, detail], value)
                seat_limit.add_metric([key, detail], other)
            else:
                near_counts[key] = value
        for tier in tiers:
            for status in INVITATION_STATUSES:
                by_tier.add_metric([tier, status], tier_counts.get((tier, status), 0))
            expiring.add_metric([tier], tier_expiring.get(tier, 0))
            near.add_metric([tier], near_counts.get(tier, 0))
        for (code, application), count in client_expiring_counts.items():
            client_expiring.add_metric([code, application], count)
        return [by_tier, expiring, near, client, client_expiring, seats, seat_limit]

    def _api(self, cursor, tiers: list[str]) -> list[Metric]:
        cursor.execute(_API_SQL, {"day": timezone.now().astimezone(UTC).date(), "top": self.top})
        # Counters that start again at 00:00 UTC each day: rate() and increase() take the daily
        # restart as a counter reset.
        requests = CounterMetricFamily(
            "flows_api_requests",
            "Tenant API requests of authenticated keys today (UTC), by tier and status class.",
            labels=["tier", "status_class"],
        )
        limited = CounterMetricFamily(
            "flows_api_rate_limited", "Tenant API requests refused with 429 today (UTC), by tier.", labels=["tier"]
        )
        client_requests = CounterMetricFamily(
            "flows_client_api_requests",
            "Tenant API requests today (UTC), for the busiest clients, by status class.",
            labels=["client", "status_class"],
        )
        client_limited = CounterMetricFamily(
            "flows_client_api_rate_limited",
            "Tenant API requests refused with 429 today (UTC), for the busiest clients.",
            labels=["client"],
        )
        tier_counts: dict[tuple[str, str], int] = {}
        tier_limited: dict[str, int] = {}
        client_limited_counts: dict[str, int] = {}
        for kind, key, status_class, count, refused in cursor.fetchall():
            if kind == "tier":
                tier_counts[(key, status_class)] = count
                tier_limited[key] = tier_limited.get(key, 0) + refused
            else:
                client_requests.add_metric([key, status_class], count)
                client_limited_counts[key] = client_limited_counts.get(key, 0) + refused
        for tier in tiers:
            for status_class in STATUS_CLASSES:
                requests.add_metric([tier, status_class], tier_counts.get((tier, status_class), 0))
            limited.add_metric([tier], tier_limited.get(tier, 0))
        for code, count in client_limited_counts.items():
            client_limited.add_metric([code], count)
        return [requests, limited, client_requests, client_limited]

    @staticmethod
    def _staff(cursor) -> list[Metric]:
        cursor.execute(_COUNTS_SQL, {"actions": list(COUNTED_ACTIONS)})
        counts = dict(cursor.fetchall())
        families = []
        for action, name in COUNTED_ACTIONS.items():
            counter = CounterMetricFamily(
                f"flows_staff_{name}", f"Staff sign-in events '{action}' in the audit trail, ever."
            )
            counter.add_metric([], counts.get(action, 0))
            families.append(counter)
        cooloff = timezone.now() - timedelta(hours=settings.AXES_COOLOFF_TIME)
        locked = AccessAttempt.objects.filter(
            failures_since_start__gte=settings.AXES_FAILURE_LIMIT, attempt_time__gte=cooloff
        ).count()
        current = _gauge("flows_staff_locked_out", "Usernames and IP addresses locked out of signing in now.")
        current.add_metric([], locked)
        families.append(current)
        return families

    @staticmethod
    def _jobs(cursor) -> list[Metric]:
        cursor.execute(_LATEST_SQL, {"actions": list(LATEST_ACTIONS)})
        # Django leaves jsonb undecoded on raw cursors.
        latest = {action: (occurred_at, json.loads(changes)) for action, occurred_at, changes in cursor.fetchall()}
        checkpoint = _gauge(
            "flows_audit_checkpoint_last_timestamp_seconds", "When audit_checkpoint last signed the chains' heads."
        )
        verified = _gauge(
            "flows_audit_verification_last_timestamp_seconds", "When verify_audit last walked every chain."
        )
        verified_ok = _gauge(
            "flows_audit_verification_ok", "1 when the last verify_audit over every chain found the trail intact."
        )
        problems = _gauge("flows_audit_verification_problems", "Problems the last verify_audit over every chain found.")
        cleanup = _gauge("flows_cleanup_last_run_timestamp_seconds", "When cleanup_invitations last completed a run.")
        cleanup_expired = _gauge("flows_cleanup_last_run_expired", "Invitations the last cleanup run expired.")
        cleanup_purged = _gauge("flows_cleanup_last_run_purged", "Finished invitations the last cleanup run deleted.")
        # A job that never ran has no series: `absent()` in the alerting rules catches it.
        if "audit.checkpointed" in latest:
            checkpoint.add_metric([], latest["audit.checkpointed"][0].timestamp())
        if "audit.verified" in latest:
            occurred_at, changes = latest["audit.verified"]
            verified.add_metric([], occurred_at.timestamp())
            verified_ok.add_metric([], 1 if changes.get("ok") else 0)
            problems.add_metric([], sum((changes.get("problems") or {}).values()))
        if "invitation.cleanup" in latest:
            occurred_at, changes = latest["invitation.cleanup"]
            cleanup.add_metric([], occurred_at.timestamp())
            cleanup_expired.add_metric([], changes.get("expired", 0))
            cleanup_purged.add_metric([], changes.get("purged", 0))
        return [checkpoint, verified, verified_ok, problems, cleanup, cleanup_expired, cleanup_purged]
