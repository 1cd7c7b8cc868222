"""What does Row Level Security cost? Time the same reads through `tenant` (RLS) and `console`.

Run by hand, never from the test suite:

    make bench                                  # or: .venv/bin/python bench/rls_overhead.py
    .venv/bin/python bench/rls_overhead.py --clients 1000 --events 1000000 --rounds 2000

It works in its own database (`flows_bench` by default, created by the owner role on the same
server, migrated like the real one so the roles, grants and policies are the production ones),
loads 1,000 clients and 1,000,000 audit events with COPY, then times two queries a tenant
application makes — a client's latest 50 audit events, and its number of events — through:

  tenant (RLS)          tenant_context(client): BEGIN, set_config('app.client_id'), the query,
                        COMMIT — as flows_app, the policy doing the filtering;
  tenant (RLS) + filter the same, with the explicit `client_id = …` filter added as well;
  console, filtered     as flows_console with an explicit `client_id = …` filter, in the same
                        kind of transaction (isolates the cost of RLS itself);
  console, autocommit   the same query as a single autocommit statement (the cheapest
                        possible read; the gap to it includes BEGIN/set_config/COMMIT).

The paths run interleaved, in rotating order, on the same client in each round, so drift in the
machine affects them alike. Medians and ratios against `console, filtered` are printed.

The generated events carry placeholder hashes: the benchmark measures reads, not the chain.
The data stays for the next run (loading is skipped when the sizes match); `--drop` removes it.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import drop_database, say, setup_django

ACTIONS = ["client.updated", "application.updated", "application.created", "staff.login", "invitation.created"]
LATEST = 50
FIELDS = ("id", "occurred_at", "action", "actor_label", "target_label")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  .venv/bin/python bench/rls_overhead.py --clients 1000 --events 1000000 --rounds 2000",
    )
    parser.add_argument("--clients", type=int, default=1000, help="clients to generate (default 1000)")
    parser.add_argument("--events", type=int, default=1_000_000, help="audit events to generate (default 1000000)")
    parser.add_argument("--rounds", type=int, default=2000, help="timed rounds per query and path (default 2000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed rounds first (default 200)")
    parser.add_argument("--database", default="flows_bench", help="database to create and use (default flows_bench)")
    parser.add_argument("--reload", action="store_true", help="regenerate the data even when the sizes match")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database afterwards")
    parser.add_argument("--seed", type=int, default=42, help="random seed for the generated data (default 42)")
    args = parser.parse_args()
    for name, least in (("clients", 1), ("events", 1), ("rounds", 10), ("warmup", 0)):
        if getattr(args, name) < least:
            parser.error(f"--{name} must be at least {least}")
    if not args.database.replace("_", "").isalnum():
        parser.error("--database must be letters, digits and underscores")
    return args


# --- Data ----------------------------------------------------------------------------------------


def load(args) -> None:
    """Generate the clients and events with COPY, as the owner, unless they are already there."""
    from django.db import connections, transaction  # noqa: PLC0415

    from audit.models import AuditEvent, ChainHead  # noqa: PLC0415
    from clients.dbroles import APPEND_ONLY_TABLES  # noqa: PLC0415
    from clients.models import Client  # noqa: PLC0415

    owner = connections["default"]
    clients_table, events_table = Client._meta.db_table, AuditEvent._meta.db_table
    heads_table = ChainHead._meta.db_table
    # The owner is subject to the FORCE'd RLS and has no policy: count in a transaction that
    # lifts FORCE and is rolled back, so nothing changes.
    with transaction.atomic(using="default"), owner.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {clients_table} NO FORCE ROW LEVEL SECURITY")
        cursor.execute(f"ALTER TABLE {events_table} NO FORCE ROW LEVEL SECURITY")
        cursor.execute(f"SELECT (SELECT count(*) FROM {clients_table}), (SELECT count(*) FROM {events_table})")
        have_clients, have_events = cursor.fetchone()
        transaction.set_rollback(True, using="default")
    if (have_clients, have_events) == (args.clients, args.events) and not args.reload:
        say(f"data present: {have_clients:,} clients, {have_events:,} audit events (--reload regenerates)")
        return

    rng = random.Random(args.seed)
    started = time.perf_counter()
    with transaction.atomic(using="default"), owner.cursor() as cursor:
        # COPY FROM is refused on a table whose RLS applies to the user; lift FORCE for this
        # transaction only (ALTER TABLE is transactional: the commit re-forces it below).
        for table in (events_table, clients_table):
            cursor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        # The append-only tables refuse TRUNCATE even from the owner, and an event must follow its
        # chain's head: triggers off in this transaction only, until the synthetic events are in.
        for table in APPEND_ONLY_TABLES:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(f"TRUNCATE {events_table}, {heads_table}, {clients_table} RESTART IDENTITY CASCADE")

        clients = [(uuid.UUID(int=rng.getrandbits(128), version=4), f"bench-{n:05d}") for n in range(args.clients)]
        now = datetime.now(UTC)
        tiers = ["free", "pro", "enterprise"]
        regions = ["EU", "US", "APAC"]
        with cursor.cursor.copy(
            f"COPY {clients_table} (id, code, legal_name, domain, region, status, created_at, updated_at, tier_id) "
            "FROM STDIN"
        ) as copy:
            for n, (client_id, code) in enumerate(clients):
                copy.write_row(
                    (client_id, code, f"Bench Client {n}", f"{code}.bench.test", regions[n % 3], "active", now, now,
                     tiers[n % 3])
                )  # fmt: skip
        say(f"  {len(clients):,} clients copied")

        # Events in time order, each for a random client, so a client's rows are scattered over
        # the heap as they would be in production (not stored together, which would flatter reads).
        seqs = dict.fromkeys(range(len(clients)), 0)
        start = now - timedelta(days=365)
        step = timedelta(days=365) / args.events
        columns = (
            "occurred_at, client_id, client_code, actor_type, actor_id, actor_label, action, target_type, "
            "target_id, target_label, changes, user_agent, request_id, chain, seq, prev_hash, hash"
        )
        placeholder_hash = "0" * 64
        progress_every = max(args.events // 10, 1)
        with cursor.cursor.copy(f"COPY {events_table} ({columns}) FROM STDIN") as copy:
            for n in range(args.events):
                index = rng.randrange(len(clients))
                client_id, code = clients[index]
                seqs[index] += 1
                copy.write_row(
                    (start + step * n, client_id, code, "system", "", "bench", ACTIONS[n % len(ACTIONS)],
                     "client", str(client_id), code, "{}", "", "", str(client_id), seqs[index],
                     placeholder_hash, placeholder_hash)
                )  # fmt: skip
                if (n + 1) % progress_every == 0:
                    say(f"  {n + 1:,} / {args.events:,} events copied ({time.perf_counter() - started:.0f} s)")
        for table in APPEND_ONLY_TABLES:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE waits for no deferred FK check
        for table in (events_table, clients_table):
            cursor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    say(f"loaded in {time.perf_counter() - started:.1f} s; VACUUM ANALYZE …")
    with owner.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {clients_table}")
        cursor.execute(f"VACUUM ANALYZE {events_table}")


# --- Timing --------------------------------------------------------------------------------------


def paths():
    """name → function(client_id, query) running one query the way that path does."""
    from django.conf import settings  # noqa: PLC0415
    from django.db import transaction  # noqa: PLC0415

    from audit.models import AuditEvent  # noqa: PLC0415
    from clients.tenancy import tenant_context  # noqa: PLC0415

    console = settings.CONSOLE_DB_ALIAS

    def run(queryset, query):
        if query == "latest":
            return len(list(queryset.order_by("-occurred_at", "-id").values_list(*FIELDS)[:LATEST]))
        return queryset.count()

    def tenant(client_id, query):
        with tenant_context(client_id):
            return run(AuditEvent.objects.all(), query)

    def tenant_filtered(client_id, query):
        with tenant_context(client_id):
            return run(AuditEvent.objects.filter(client_id=client_id), query)

    def console_filtered(client_id, query):
        with transaction.atomic(using=console):
            return run(AuditEvent.objects.using(console).filter(client_id=client_id), query)

    def console_autocommit(client_id, query):
        return run(AuditEvent.objects.using(console).filter(client_id=client_id), query)

    return {
        "tenant (RLS)": tenant,
        "tenant (RLS) + filter": tenant_filtered,
        "console, filtered": console_filtered,
        "console, autocommit": console_autocommit,
    }


def measure(args) -> dict:
    from clients.models import Client  # noqa: PLC0415

    client_ids = list(Client.objects.using("console").order_by("code").values_list("id", flat=True))
    random.Random(args.seed).shuffle(client_ids)
    runners = paths()
    names = list(runners)
    orders = itertools.cycle([names[i:] + names[:i] for i in range(len(names))])
    results = {query: {name: [] for name in names} for query in ("latest", "count")}

    for query in results:
        say(f"timing '{query}': {args.warmup} warm-up + {args.rounds} rounds x {len(names)} paths …")
        for round_number in range(args.warmup + args.rounds):
            client_id = client_ids[round_number % len(client_ids)]
            answers = set()
            for name in next(orders):
                began = time.perf_counter_ns()
                answers.add(runners[name](client_id, query))
                elapsed = time.perf_counter_ns() - began
                if round_number >= args.warmup:
                    results[query][name].append(elapsed)
            if len(answers) != 1:
                raise SystemExit(f"paths disagree for client {client_id} on '{query}': {sorted(answers)}")
    return results


def explain(client_id) -> list[str]:
    """The plans of the RLS query as flows_app sees it, for the write-up."""
    from django.db import connections  # noqa: PLC0415

    from audit.models import AuditEvent  # noqa: PLC0415
    from clients.tenancy import tenant_context  # noqa: PLC0415

    table = AuditEvent._meta.db_table
    lines = []
    with tenant_context(client_id), connections["tenant"].cursor() as cursor:
        for label, statement in (
            ("latest", f"SELECT {', '.join(FIELDS)} FROM {table} ORDER BY occurred_at DESC, id DESC LIMIT {LATEST}"),
            ("count", f"SELECT count(*) FROM {table}"),
        ):
            cursor.execute(f"EXPLAIN (COSTS OFF) {statement}")
            lines.append(f"{label}:")
            lines.extend(f"  {row[0]}" for row in cursor.fetchall())
    return lines


def report(args, results: dict, plan: list[str]) -> None:
    from django.db import connections  # noqa: PLC0415

    with connections["console"].cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    say("")
    say(f"PostgreSQL {version}; {args.clients:,} clients, {args.events:,} audit events, {args.rounds:,} rounds")
    say(f"{'query':<8} {'path':<24} {'median µs':>10} {'p90 µs':>8} {'ratio':>7}")
    for query, by_path in results.items():
        baseline = statistics.median(by_path["console, filtered"])
        for name, samples in by_path.items():
            median = statistics.median(samples)
            p90 = statistics.quantiles(samples, n=10)[-1]
            say(f"{query:<8} {name:<24} {median / 1000:>10.1f} {p90 / 1000:>8.1f} {median / baseline:>7.3f}")
    say("")
    say("ratio = median / median of 'console, filtered' (same query, same transaction shape). Target ≤ 1.10.")
    say("Plans as flows_app (RLS only, no explicit filter):")
    for line in plan:
        say(f"  {line}")


def main() -> None:
    args = parse_args()
    setup_django(args.database)
    load(args)
    results = measure(args)
    from clients.models import Client  # noqa: PLC0415

    plan = explain(Client.objects.using("console").order_by("code").values_list("id", flat=True).first())
    report(args, results, plan)
    if args.drop:
        drop_database(args.database)


if __name__ == "__main__":
    main()
