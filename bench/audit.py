"""How fast does verify_audit check the trail? Events per second against a bare SHA-256 loop over the same rows.

Run by hand, never from the test suite:

    make bench-audit                            # or: .venv/bin/python bench/audit.py
    .venv/bin/python bench/audit.py --clients 10000 --events 1000000

It works in its own database (`flows_bench_audit` by default, migrated like the real one), loads
the clients and real keyed chains (hash and HMAC computed as record() does, with the configured
FLOWS_AUDIT_KEYS) with COPY and the triggers off, then times:

  floor         a bare Python loop of hashlib.sha256 over the events' canonical JSON, already
                in memory (a sample, scaled): no database, no JSON encoding, no HMAC;
  verify_audit  verification.verify_database() over every chain, as the console role, through
                the server-side cursor, with the peak resident memory before and after;
  ceilings      each part of verify_audit alone, as the fastest it could go with the rest free:
                the floor's rows hashed and their hash HMAC'd with the audit key (in memory, what
                checking a keyed event cannot skip); the trail read by verify_audit's own COPY,
                nothing checked; and verify_audit's per-event check (fastcheck.check_lines) in one
                process over COPY blocks already read.

With `--changelist-against DATABASE` (a second benchmark database, loaded before with fewer events),
it also times the audit changelist in both, request by request, through Django's test client as a
superuser: the first page, page 1,000 (by its keyset cursor), filtered by client, by one day, and
searched by part of a label, with each page's query count.

The data stays for the next run (loading is skipped when the sizes match); `--drop` removes it.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import importlib
import json
import os
import random
import resource
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import drop_database, say, setup_django

ACTIONS = [
    "client.updated", "application.updated", "secret.used", "secret.revealed", "invitation.issued", "staff.login",
]  # fmt: skip
FLOOR_SAMPLE = 200_000
CHECK_SAMPLE_BLOCKS = 100  # about 100 MiB of COPY text: ~250,000 events


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  .venv/bin/python bench/audit.py --clients 10000 --events 1000000",
    )
    parser.add_argument("--clients", type=int, default=10_000, help="clients to generate (default 10000)")
    parser.add_argument("--events", type=int, default=1_000_000, help="audit events to generate (default 1000000)")
    parser.add_argument("--database", default="flows_bench_audit", help="database to use (default flows_bench_audit)")
    parser.add_argument("--reload", action="store_true", help="regenerate the data even when the sizes match")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database afterwards")
    parser.add_argument("--seed", type=int, default=42, help="random seed for the generated data (default 42)")
    parser.add_argument(
        "--changelist-against",
        metavar="DATABASE",
        help="also time the audit changelist here and in DATABASE (loaded before with its own --events), side by side",
    )
    parser.add_argument("--rounds", type=int, default=15, help="changelist requests per case and database (default 15)")
    parser.add_argument("--skip-verify", action="store_true", help="time only the changelist")
    parser.add_argument(
        "--exact-verification",
        action="store_true",
        help="also time the ordered walk (verify_database(exact=True), the walk before the COPY one), side by side",
    )
    parser.add_argument(
        "--record-cost", type=int, default=0, metavar="N",
        help="also time N record() calls per round with the search-label trigger on and off (audit/migrations/0008)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, help="worker processes of the COPY walk (default: verify_audit's)")
    parser.add_argument(
        "--export-rows",
        type=int,
        default=0,
        help="also time export_audit (JSON Lines and CSV) against COPY of the same rows: the newest N (a --since)",
    )
    parser.add_argument(
        "--baseline-verification",
        metavar="FILE",
        help="also time this other version of audit/verification.py, right after the current one",
    )
    args = parser.parse_args()
    for name in ("clients", "events", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    for database in (args.database, args.changelist_against or "x"):
        if not database.replace("_", "").isalnum():
            parser.error("--database and --changelist-against must be letters, digits and underscores")
    return args


def event_values(n: int, rng: random.Random, client_id: uuid.UUID, code: str, occurred_at: datetime) -> dict:
    return {
        "occurred_at": occurred_at, "client_id": client_id, "client_code": code, "actor_type": "user",
        "actor_id": str(rng.randrange(1, 50)), "actor_label": f"staff{n % 50}", "action": ACTIONS[n % len(ACTIONS)],
        "target_type": "vault.secret", "target_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "target_label": f"{code} stripe webhook_secret", "changes": {"reason": "bench", "count": n % 7},
        "ip": "192.0.2.10", "user_agent": "bench/1.0", "request_id": f"{n:016x}", "chain": str(client_id),
    }  # fmt: skip


def copy_chains(cursor, args, rng: random.Random, clients: list, *, started: float) -> None:
    """The events, each for a random client (a chain's rows scattered over the heap, as in production), chained
    and keyed as record() does, then the chains' heads."""
    from psycopg.types.json import Jsonb  # noqa: PLC0415

    from audit import keys  # noqa: PLC0415
    from audit.models import AuditEvent, ChainHead  # noqa: PLC0415
    from audit.services import GENESIS_HASH, event_hash, event_mac, hashed_fields  # noqa: PLC0415

    key = keys.chain_keys().primary
    heads = [(0, GENESIS_HASH) for _ in clients]
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / args.events
    columns = (
        "occurred_at, client_id, client_code, actor_type, actor_id, actor_label, action, target_type, target_id,"
        " target_label, changes, ip, user_agent, request_id, chain, seq, prev_hash, hash, key_id, mac"
    )
    progress_every = max(args.events // 10, 1)
    with cursor.cursor.copy(f"COPY {AuditEvent._meta.db_table} ({columns}) FROM STDIN") as copy:
        for n in range(args.events):
            index = rng.randrange(len(clients))
            client_id, code = clients[index]
            values = event_values(n, rng, client_id, code, start + step * n)
            seq, prev_hash = heads[index][0] + 1, heads[index][1]
            hash_ = event_hash(prev_hash, hashed_fields({**values, "key_id": key.id, "seq": seq}))
            heads[index] = (seq, hash_)
            row = [*values.values(), seq, prev_hash, hash_, key.id, event_mac(key.key, hash_)]
            row[10] = Jsonb(row[10])  # changes
            copy.write_row(row)
            if (n + 1) % progress_every == 0:
                say(f"  {n + 1:,} / {args.events:,} events copied ({time.perf_counter() - started:.0f} s)")
    with cursor.cursor.copy(f"COPY {ChainHead._meta.db_table} (client_id, chain, seq, hash) FROM STDIN") as copy:
        for (client_id, _), (seq, hash_) in zip(clients, heads, strict=True):
            if seq:
                copy.write_row((client_id, str(client_id), seq, hash_))


def load(args) -> None:
    """Clients and keyed chains with COPY, as the owner, unless they are already there."""
    from django.db import connections, transaction  # noqa: PLC0415

    from audit.models import AuditEvent, ChainHead, Checkpoint, SearchLabel  # noqa: PLC0415
    from clients.dbroles import APPEND_ONLY_TABLES  # noqa: PLC0415
    from clients.models import Client  # noqa: PLC0415

    owner = connections["default"]
    clients_table, events_table = Client._meta.db_table, AuditEvent._meta.db_table
    heads_table, checkpoints_table = ChainHead._meta.db_table, Checkpoint._meta.db_table
    rls_tables = (events_table, clients_table, heads_table)
    with transaction.atomic(using="default"), owner.cursor() as cursor:
        for table in rls_tables:
            cursor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        cursor.execute(f"SELECT (SELECT count(*) FROM {clients_table}), (SELECT count(*) FROM {events_table})")
        have = cursor.fetchone()
        transaction.set_rollback(True, using="default")
    # The changelist benchmark signs a staff user in, which records a few staff.login events of its own.
    if have[0] == args.clients and args.events <= have[1] < args.events + 1000 and not args.reload:
        say(f"data present: {have[0]:,} clients, {have[1]:,} audit events (--reload regenerates)")
        return

    rng = random.Random(args.seed)
    started = time.perf_counter()
    with transaction.atomic(using="default"), owner.cursor() as cursor:
        # COPY is refused where RLS applies to the user, and the triggers would make every event
        # follow its head one by one: both off for this transaction only (ALTER TABLE is transactional).
        for table in rls_tables:
            cursor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        for table in (*APPEND_ONLY_TABLES, heads_table):
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(
            f"TRUNCATE {events_table}, {heads_table}, {checkpoints_table}, {clients_table},"
            f" {SearchLabel._meta.db_table} RESTART IDENTITY CASCADE"
        )
        clients = [(uuid.UUID(int=rng.getrandbits(128), version=4), f"bench-{n:05d}") for n in range(args.clients)]
        now = datetime.now(UTC)
        with cursor.cursor.copy(
            f"COPY {clients_table} (id, code, legal_name, domain, region, status, created_at, updated_at, tier_id) "
            "FROM STDIN"
        ) as copy:
            for n, (client_id, code) in enumerate(clients):
                copy.write_row((client_id, code, f"Bench {n}", f"{code}.bench.test", "EU", "active", now, now, "pro"))
        copy_chains(cursor, args, rng, clients, started=started)
        # The triggers were off: the search table gets the labels as the migration's backfill gives them.
        cursor.execute(importlib.import_module("audit.migrations.0008_search_labels").BACKFILL)
        for table in (*APPEND_ONLY_TABLES, heads_table):
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table in rls_tables:
            cursor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    say(f"loaded in {time.perf_counter() - started:.1f} s; VACUUM ANALYZE …")
    with owner.cursor() as cursor:
        for table in rls_tables:
            cursor.execute(f"VACUUM ANALYZE {table}")


def canonical_sample(args) -> list[bytes]:
    """What the floor hashes: the previous hash and the canonical JSON of events like the loaded ones, as bytes."""
    from audit.services import GENESIS_HASH, hashed_fields  # noqa: PLC0415

    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    client_id = uuid.uuid4()
    return [
        (
            f"{GENESIS_HASH}\n"
            + json.dumps(
                hashed_fields({**event_values(n, rng, client_id, "bench", now), "key_id": "k", "seq": n}),
                sort_keys=True,
                separators=(",", ":"),
                default=str,
            )
        ).encode()
        for n in range(min(FLOOR_SAMPLE, args.events))
    ]


def floor(encoded: list[bytes]) -> float:
    """Events per second of hashlib.sha256 alone over canonical rows like the loaded ones (a sample, in memory)."""
    began = time.perf_counter()
    for row in encoded:
        hashlib.sha256(row).hexdigest()
    return len(encoded) / (time.perf_counter() - began)


def crypto_ceiling(encoded: list[bytes]) -> float:
    """Events per second of what a keyed event's check cannot do without, over the floor's rows in memory: its
    SHA-256 (the floor) and the HMAC-SHA256 of that hash with the audit key, compared as fastcheck compares them."""
    key = hashlib.sha256(b"bench audit key").digest()
    digest = hmac.digest
    began = time.perf_counter()
    for row in encoded:
        hash_ = hashlib.sha256(row).hexdigest().encode()
        digest(key, hash_, "sha256").hex().encode() == hash_  # noqa: B015 - the comparison is the cost measured
    return len(encoded) / (time.perf_counter() - began)


def read_ceiling() -> tuple[float, list[bytes]]:
    """Events per second of reading the whole trail the way verify_audit reads it (its COPY, as the console role,
    in one read-only snapshot), checking nothing; and the first blocks read, for check_ceiling."""
    from django.db import transaction  # noqa: PLC0415

    from audit import verification  # noqa: PLC0415
    from audit.models import AuditEvent  # noqa: PLC0415

    events = AuditEvent.objects.all()
    rows, sample = 0, []
    with transaction.atomic(using=events.db):
        began = time.perf_counter()
        for block in verification._copy_blocks(events):  # the read verify_audit does, alone
            rows += block.count(b"\n")
            if len(sample) < CHECK_SAMPLE_BLOCKS:
                sample.append(block)
        seconds = time.perf_counter() - began
    return rows / seconds, sample


def check_ceiling(blocks: list[bytes]) -> float:
    """Events per second of fastcheck.check_lines (mac, canonical JSON, hash) in this one process, over COPY blocks
    already read: verify_audit's checking without its reading."""
    from audit import fastcheck, keys  # noqa: PLC0415

    keyring = {key.id.encode(): key.key for key in keys.chain_keys().keys}
    checked = flagged = 0
    began = time.perf_counter()
    for block in blocks:
        events, problems, recheck = fastcheck.check_lines(block, keyring, frozenset())
        checked += events
        flagged += len(problems) + len(recheck)
    rate = checked / (time.perf_counter() - began)
    if flagged:
        say(f"  (the checking ceiling's sample had {flagged:,} events with a problem: not a clean trail)")
    return rate


def baseline_module(path: str):
    """Another version of audit/verification.py (e.g. `git show <commit>:audit/verification.py > old.py`), to time
    side by side with the current one."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("baseline_verification", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def verify(verification=None, **options) -> tuple[float, int, dict, int, int]:
    """verify_database over the whole trail: (seconds, events, problems by kind, peak RSS before, after) in KiB."""
    if verification is None:
        from audit import verification  # noqa: PLC0415

    problems: dict[str, int] = {}

    def emit(problem) -> None:
        problems[problem.kind] = problems.get(problem.kind, 0) + 1

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    summary = verification.verify_database(emit=emit, **options)
    seconds = time.perf_counter() - began
    return seconds, summary.events, problems, rss_before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Sink:
    """A stdout that counts what it is given and keeps nothing."""

    def __init__(self):
        self.chars = 0

    def write(self, text: str) -> None:
        self.chars += len(text)

    def flush(self) -> None:
        pass


def export(args) -> list[tuple[str, int, float]]:
    """(case, rows, seconds): COPY of the export's rows and columns in its order, then export_audit as JSON Lines and
    as CSV, for the newest --export-rows events (a --since filter)."""
    from django.core.management import call_command  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415

    from audit.models import AuditEvent  # noqa: PLC0415
    from audit.selectors import EVENT_FIELDS  # noqa: PLC0415

    since = AuditEvent.objects.order_by("-occurred_at").values_list("occurred_at", flat=True)[args.export_rows - 1]
    results = []
    columns = ", ".join(EVENT_FIELDS)
    began = time.perf_counter()
    rows = 0
    with connections["console"].cursor() as cursor:
        statement = (
            f"COPY (SELECT {columns} FROM {AuditEvent._meta.db_table} WHERE occurred_at >= %s"
            " ORDER BY client_id, chain, seq) TO STDOUT"
        )
        with cursor.cursor.copy(statement, [since]) as copy:
            for _ in copy:
                rows += 1
    results.append(("COPY ... TO STDOUT (text)", rows, time.perf_counter() - began))
    # The export as it was before COPY wrote it: Django's rows, one json.dumps per event (the command's loop).
    from audit.selectors import export_queryset, exported_rows  # noqa: PLC0415

    sink = Sink()
    began = time.perf_counter()
    exported = 0
    for event in exported_rows(export_queryset(since=since)):
        sink.write(json.dumps(event, sort_keys=True) + "\n")
        exported += 1
    results.append(("before: Python rows, json.dumps", exported, time.perf_counter() - began))
    for export_format in ("jsonl", "csv"):
        sink = Sink()
        began = time.perf_counter()
        call_command("export_audit", "--since", since.isoformat(), "--format", export_format, stdout=sink,
                     stderr=Sink())  # fmt: skip
        seconds = time.perf_counter() - began
        results.append((f"export_audit --format {export_format}", rows, seconds))
    return results


def record_cost(args) -> None:
    """What the search table's trigger adds to one record(): rounds of N events (each its own transaction, as the
    console role, into one client's chain), the trigger on and off alternately; labels already known, and a new
    target label every event (the worst case: one more row and its trigram entries)."""
    from django.db import connections, transaction  # noqa: PLC0415

    from audit.services import record  # noqa: PLC0415
    from clients.models import Client  # noqa: PLC0415

    client = Client.objects.get(code="bench-00042")
    samples: dict[tuple[str, bool], list[float]] = {}
    for round_number in range(6):
        for labels in ("known labels", "a new label each"):
            for trigger in (True, False) if round_number % 2 == 0 else (False, True):
                with connections["default"].cursor() as cursor:
                    verb = "ENABLE" if trigger else "DISABLE"
                    cursor.execute(f"ALTER TABLE audit_auditevent {verb} TRIGGER audit_event_feeds_search_labels")
                began = time.perf_counter()
                for _ in range(args.record_cost):
                    label = f"bench-00042 stripe webhook_secret{'' if labels == 'known labels' else uuid.uuid4()}"
                    with transaction.atomic(using="console"):
                        record(actor=None, action="secret.used", client=client, target_label=label, using="console")
                if round_number:  # the first round warms up
                    samples.setdefault((labels, trigger), []).append((time.perf_counter() - began) / args.record_cost)
    with connections["default"].cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_feeds_search_labels")
    say("")
    say(f"record(), one event per transaction, median of 5 rounds of {args.record_cost}: label trigger on / off")
    for labels in ("known labels", "a new label each"):
        on = statistics.median(samples[(labels, True)])
        off = statistics.median(samples[(labels, False)])
        say(f"{labels:<20} {on * 1e6:>8.0f} µs / {off * 1e6:>8.0f} µs   ratio {on / off:.3f}")


def point_at(database: str) -> None:
    """Every alias at `database`, reconnecting (the comparison alternates between two databases)."""
    from django.conf import settings  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415

    connections.close_all()
    for alias in settings.DATABASES:
        settings.DATABASES[alias]["NAME"] = database
        connections[alias].settings_dict["NAME"] = database


def changelist_cases() -> dict[str, str]:
    """The investigator's requests, as query strings, computed from the data in the current database."""
    from audit.models import AuditEvent  # noqa: PLC0415
    from clients.models import Client  # noqa: PLC0415

    # Page 1,000 with every event shown (sign-ins too), reached as the "older" links reach it: by its cursor.
    deep = AuditEvent.objects.order_by("-occurred_at", "-id").values_list("occurred_at", "id")[49_950]
    client = Client.objects.get(code="bench-00042")
    # The search: part of the target labels of one client in about every 2.4 (bench-04242 of 10,000 clients,
    # bench-00042 of 100): in a database loaded with as many events per client, as many matches.
    term = f"bench-{int(Client.objects.count() * 0.4242):05d}"
    middle = AuditEvent.objects.order_by("-occurred_at").values_list("occurred_at", flat=True)[1000].date()
    return {
        "first page": "",
        "page 1,000": "?" + urlencode({"sign_ins": "shown", "older": f"{deep[0].isoformat()}|{deep[1]}"}),
        "filtered by client": "?" + urlencode({"client": str(client.pk)}),
        "filtered by date (one day)": "?" + urlencode({"occurred_from": middle, "occurred_to": middle}),
        "searched (part of a label)": "?" + urlencode({"q": term}),
    }


def matches() -> str:
    """How many events the client filter and the search find in the current database (counted, outside timing)."""
    from audit.models import AuditEvent  # noqa: PLC0415
    from clients.models import Client  # noqa: PLC0415

    term = f"bench-{int(Client.objects.count() * 0.4242):05d}"
    client = Client.objects.get(code="bench-00042")
    by_client = AuditEvent.objects.filter(client_id=client.pk).count()
    searched = AuditEvent.objects.filter(target_label__icontains=term).count()
    return f"client bench-00042: {by_client:,} events; search {term!r}: {searched:,} target labels"


def changelist(args, databases: list[str]) -> dict[str, dict[str, tuple[float, float, int, int]]]:
    """Per case and database: (median seconds, median seconds in SQL, queries, rows shown) of the audit changelist
    through the test client,
    as a superuser; the databases alternate request by request so that drift hits them alike."""
    from django.conf import settings  # noqa: PLC0415
    from django.contrib.auth.models import User  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: PLC0415
    from django.urls import reverse  # noqa: PLC0415

    setup_test_environment()
    settings.FLOWS_STAFF_REQUIRE_MFA = False  # the bench user has no second factor; sign-in is not what is timed
    url = reverse("admin:audit_auditevent_changelist")
    browsers, cases = {}, {}
    for database in databases:
        point_at(database)
        user = User.objects.filter(username="bench-auditor").first() or User.objects.create_superuser(
            "bench-auditor", "auditor@bench.test", None
        )
        browsers[database] = Client()
        browsers[database].force_login(user)
        cases[database] = changelist_cases()
        say(f"{database}: {matches()}")
    results: dict[str, dict[str, tuple[float, int, int]]] = {}
    for case in cases[databases[0]]:
        samples: dict[str, list[float]] = {database: [] for database in databases}
        in_sql: dict[str, list[float]] = {database: [] for database in databases}
        counts: dict[str, tuple[int, int]] = {}
        for round_number in range(args.rounds + 1):
            order = databases if round_number % 2 == 0 else list(reversed(databases))
            for database in order:
                point_at(database)
                browsers[database].get(url + cases[database][case])  # connect and warm this database's caches
                with CaptureQueriesContext(connections["console"]) as queries:
                    began = time.perf_counter()
                    response = browsers[database].get(url + cases[database][case])
                    elapsed = time.perf_counter() - began
                assert response.status_code == 200, (case, database, response.status_code)
                if round_number:  # the first round only warms up
                    samples[database].append(elapsed)
                    in_sql[database].append(sum(float(query["time"]) for query in queries.captured_queries))
                counts[database] = (len(queries), len(response.context["cl"].result_list))
        results[case] = {
            db: (statistics.median(samples[db]), statistics.median(in_sql[db]), *counts[db]) for db in databases
        }
    return results


def report_changelist(args, results, databases: list[str]) -> None:
    small, large = databases[1], databases[0]
    say("")
    say(f"audit changelist as a superuser through the test client, median of {args.rounds} requests per cell")
    say(f"(of which in SQL: the queries' own time; queries and rows shown: {small} / {large})")
    say(f"{'case':<28} {small:>22} {large:>22} {'ratio':>6}  {'SQL ms':>15} {'ratio':>6}  queries   rows")
    for case, by_database in results.items():
        (small_s, small_sql, small_q, small_rows) = by_database[small]
        (large_s, large_sql, large_q, large_rows) = by_database[large]
        say(
            f"{case:<28} {small_s * 1000:>19.1f} ms {large_s * 1000:>19.1f} ms {large_s / small_s:>6.2f}"
            f"  {small_sql * 1000:>6.1f} / {large_sql * 1000:<6.1f} {large_sql / small_sql:>6.2f}"
            f"  {small_q:>3} / {large_q:<3} {small_rows:>3} / {large_rows:<3}"
        )


def report_verification(args, version: str) -> None:
    """verify_audit over the whole trail against the floor, the ceilings of its parts, and the optional comparisons."""
    encoded = canonical_sample(args)
    floor_rate = floor(encoded)
    crypto_rate = crypto_ceiling(encoded)
    del encoded
    options = {} if args.workers is None else {"workers": args.workers}
    seconds, events, problems, rss_before, rss_after = verify(**options)
    rate = events / seconds
    # After verify_audit, so that both read the trail from the same (warm) cache.
    read_rate, blocks = read_ceiling()
    check_rate = check_ceiling(blocks)
    del blocks
    say("")
    say(f"{version}; {args.clients:,} clients, {events:,} keyed audit events; {os.cpu_count()} CPUs")
    say(f"floor: sha256 alone over canonical rows    {floor_rate:>12,.0f} events/s")
    say(f"verify_audit (whole trail, console role)   {rate:>12,.0f} events/s  ({seconds:.1f} s)")
    say(f"ratio verify / floor                       {rate / floor_rate:>12.3f}   (target ≥ 0.5)")
    say("ceilings, each part of verify_audit alone (ratio to the floor):")
    say(f"  sha256 + HMAC of it, rows in memory      {crypto_rate:>12,.0f} events/s  {crypto_rate / floor_rate:>6.3f}")
    say(f"  reading: its COPY, nothing checked       {read_rate:>12,.0f} events/s  {read_rate / floor_rate:>6.3f}")
    say(f"  checking: check_lines, one process       {check_rate:>12,.0f} events/s  {check_rate / floor_rate:>6.3f}")
    say(f"problems found: {problems or 'none'}")
    say(f"peak RSS before / after verify: {rss_before / 1024:.0f} MiB / {rss_after / 1024:.0f} MiB")
    if args.exact_verification:
        exact_seconds, exact_events, exact_problems, _, _ = verify(exact=True)
        exact_rate = exact_events / exact_seconds
        say(f"ordered walk (exact=True, as before)       {exact_rate:>12,.0f} events/s  ({exact_seconds:.1f} s)")
        say(f"ratio ordered walk / floor                 {exact_rate / floor_rate:>12.3f}")
        say(f"speed-up COPY walk / ordered walk          {rate / exact_rate:>12.2f}")
        say(f"ordered walk problems found: {exact_problems or 'none'}")
    if args.baseline_verification:
        base_seconds, base_events, base_problems, _, _ = verify(baseline_module(args.baseline_verification))
        base_rate = base_events / base_seconds
        name = Path(args.baseline_verification).name
        say(f"baseline {name:<33} {base_rate:>12,.0f} events/s  ({base_seconds:.1f} s)")
        say(f"ratio baseline / floor                     {base_rate / floor_rate:>12.3f}")
        say(f"speed-up current / baseline                {rate / base_rate:>12.2f}")
        say(f"baseline problems found: {base_problems or 'none'}")


def main() -> None:
    args = parse_args()
    setup_django(args.database)
    load(args)
    import django.db  # noqa: PLC0415

    with django.db.connections["console"].cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(",")[0]
    if args.changelist_against:
        databases = [args.database, args.changelist_against]
        report_changelist(args, changelist(args, databases), databases)
        point_at(args.database)
    if args.record_cost:
        record_cost(args)
    if args.export_rows:
        say("")
        say(f"export of the newest {args.export_rows:,} events (--since), console role, output discarded")
        copy_rate = None
        for case, rows, seconds in export(args):
            copy_rate = copy_rate or rows / seconds
            say(f"{case:<32} {rows:>10,} rows {seconds:>7.1f} s {rows / seconds:>10,.0f} rows/s"
                f"  {rows / seconds / copy_rate:>5.2f} of COPY")  # fmt: skip
    if args.skip_verify:
        return
    report_verification(args, version)
    if args.drop:
        drop_database(args.database)


if __name__ == "__main__":
    main()
