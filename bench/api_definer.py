"""The tenant API's definer message on its own: what `api_authenticate` adds to a request's database time.

Run by hand, never from the test suite, after `bench/api.py` has prepared its database (and, to
compare two versions of the function, another database prepared by another checkout):

    .venv/bin/python bench/api_definer.py --calls 3000
    .venv/bin/python bench/api_definer.py --database flows_bench_api --database flows_bench_api_main

As the tenant role (`flows_app`), on one connection per database, it sends what an API request
sends — `BEGIN; SELECT * FROM api_authenticate(…); COMMIT; BEGIN` as one message (the way
`tenant_context.from_definer` sends it), then the tenant transaction's `set_config` and `COMMIT` —
and, alternately, what the bare view sends in its place (`BEGIN`, `set_config`, `COMMIT`), for
the benchmark's keys in turn. Databases and the two sequences alternate call by call, so the
machine's drift hits all alike. Printed: median and mean microseconds of each sequence, and the
definer call's premium (the difference of the medians).

The keys' stored hashes stand in for their secrets (the function compares hashes; a benchmark
database's keys are the benchmark's own); nothing about them is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.api_settings")
from bench.common import _conninfo, say  # noqa: E402

ENDPOINT = "list_applications"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  .venv/bin/python bench/api_definer.py --database flows_bench_api --calls 3000",
    )
    parser.add_argument(
        "--database", action="append", help="a database bench/api.py prepared (repeatable; default flows_bench_api)"
    )
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per database and sequence (default 3000)")
    args = parser.parse_args()
    args.database = args.database or ["flows_bench_api"]
    databases = args.database
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    if any(not name.replace("_", "").isalnum() for name in databases):
        parser.error("--database must be letters, digits and underscores")
    if len(set(databases)) < len(databases):
        parser.error("--database names each database once")
    return args


def main() -> None:
    args = parse_args()
    databases = args.database

    import django  # noqa: PLC0415

    django.setup()
    import psycopg  # noqa: PLC0415
    from django.conf import settings  # noqa: PLC0415

    from api.auth import _AUTHENTICATE_SQL  # noqa: PLC0415

    message = f"BEGIN; {_AUTHENTICATE_SQL}; COMMIT; BEGIN"
    limit = settings.FLOWS_API_RATE_LIMIT_PER_MINUTE
    targets = []
    for name in databases:
        owner = {**settings.DATABASES["default"], "NAME": name}
        with psycopg.connect(**_conninfo(owner)) as connection:
            keys = connection.execute(
                "SELECT a.prefix, a.secret_hash, a.client_id FROM clients_apikey a JOIN clients_client c"
                " ON c.id = a.client_id WHERE c.code LIKE %s AND a.revoked_at IS NULL"
                " AND a.rate_limit >= 1000000 ORDER BY a.prefix",
                ["bench-api-%"],
            ).fetchall()
        if not keys:
            raise SystemExit(f"no benchmark keys in {name}: run bench/api.py first")
        tenant = {**settings.DATABASES[settings.TENANT_DB_ALIAS], "NAME": name}
        connection = psycopg.connect(**_conninfo(tenant), autocommit=True, cursor_factory=psycopg.ClientCursor)
        targets.append((name, connection, keys))

    def definer(connection, key) -> None:
        with connection.cursor() as cursor:
            cursor.execute(message, [key[0], key[1], limit, ENDPOINT])
            cursor.nextset()
            row = cursor.fetchone()
        connection.execute("SELECT set_config('app.client_id', %s, true)", [str(row[0])])
        connection.execute("COMMIT")

    def plain(connection, key) -> None:
        connection.execute("BEGIN")
        connection.execute("SELECT set_config('app.client_id', %s, true)", [str(key[2])])
        connection.execute("COMMIT")

    sequences = {"definer": definer, "plain": plain}
    times = {(name, sequence): [] for name, _, _ in targets for sequence in sequences}
    for call in range(200 + args.calls):  # the first 200: plans cached, pages in memory
        order = targets if call % 2 == 0 else targets[::-1]
        for name, connection, keys in order:
            key = keys[call % len(keys)]
            for sequence, run in sequences.items() if call % 4 < 2 else reversed(sequences.items()):
                began = time.perf_counter_ns()
                run(connection, key)
                if call >= 200:
                    times[(name, sequence)].append(time.perf_counter_ns() - began)
    say(f"{len(databases)} database(s), {args.calls} calls each per sequence, as {settings.APP_ROLE}; microseconds")
    say(f"{'database':<28} {'definer median':>14} {'mean':>7} {'plain median':>12} {'mean':>7} {'premium':>8}")
    for name, connection, _ in targets:
        connection.close()
        definer_times, plain_times = times[(name, "definer")], times[(name, "plain")]
        premium = statistics.median(definer_times) - statistics.median(plain_times)
        say(
            f"{name:<28} {statistics.median(definer_times) / 1e3:>14.1f} {statistics.mean(definer_times) / 1e3:>7.1f}"
            f" {statistics.median(plain_times) / 1e3:>12.1f} {statistics.mean(plain_times) / 1e3:>7.1f}"
            f" {premium / 1e3:>8.1f}"
        )


if __name__ == "__main__":
    main()
