"""The tenant API through gunicorn: throughput and latency next to a bare Django view doing the same work.

Run by hand, never from the test suite:

    make bench-api                      # or: .venv/bin/python bench/api.py
    .venv/bin/python bench/api.py --clients 200 --seconds 5 --rounds 3 --concurrency 8

It works in its own database (`flows_bench_api` by default, created by the owner role on the same
server and migrated like the real one), with `--clients` clients (enterprise tier), each with an
application, one API key (scopes configuration:read and invitations:redeem, a rate limit of
1,000,000 a minute so no request is limited) and one pending invitation. Keys and tokens are
shown once, so each run issues fresh ones (the previous run's keys are revoked).

gunicorn serves it with `--workers` sync workers (default 2) on a free port, with the benchmark's
settings (`bench.api_settings`: the product's settings, DEBUG off, a connection pool, and the
bare views in `bench.api_urls`). A load generator in this process (`--concurrency` threads, one
HTTP/1.1 connection per request as gunicorn's sync workers close it) spreads the requests over
the clients and their keys, for four paths:

  API  POST /api/v1/invitations/validate    bare POST /bench/bare/invitations/validate
  API  GET  /api/v1/applications            bare GET  /bench/bare/applications

The bare views do the same work (tenant transaction as flows_app under RLS, the same selectors
and services, JSON out) without django-ninja, authentication, rate limit and metering. Each
round times every path for `--seconds`, after one untimed warm-up round: per endpoint the API and
the bare view alternate in slices of `--slice` seconds (default 1), so that drift in the load of
the machine hits both alike.
Reported: requests per second, p50 and p99 latency, the API/bare throughput ratio (target
≥ 0.8), and the database round trips per request, counted in this process at the driver
(every statement a psycopg cursor sends and every BEGIN/COMMIT/ROLLBACK), split into what
authentication + rate limit and metering add.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.api_settings"
from bench.common import drop_database, say, setup_django  # noqa: E402

RATE_LIMIT = 1_000_000
APP_CODE = "onboarding"
BARE = "/bench/bare"
PATHS = {
    # name: (endpoint label, method, API path, bare path)
    "validate": ("POST /invitations/validate", "POST", "/api/v1/invitations/validate", f"{BARE}/invitations/validate"),
    "applications": ("GET /applications", "GET", "/api/v1/applications", f"{BARE}/applications"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  .venv/bin/python bench/api.py --clients 200 --seconds 5 --rounds 3",
    )
    parser.add_argument("--clients", type=int, default=200, help="clients, one key each (default 200)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per path and round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument(
        "--slice", type=float, default=1.0,
        help="seconds of one slice: API and bare alternate slice by slice within a round (default 1; "
        "--slice as long as --seconds: one block per path and round)",
    )  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=8, help="load generator threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--pool-size", type=int, default=4, help="DB_POOL_MAX_SIZE per worker (default 4)")
    parser.add_argument("--database", default="flows_bench_api", help="database (default flows_bench_api)")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database afterwards")
    args = parser.parse_args()
    for name, least in (("clients", 1), ("seconds", 0.5), ("rounds", 1), ("concurrency", 1), ("workers", 1),
                        ("pool_size", 1), ("slice", 0.25)):  # fmt: skip
        if getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')} must be at least {least}")
    if not args.database.replace("_", "").isalnum():
        parser.error("--database must be letters, digits and underscores")
    return args


def server_environment(args) -> dict[str, str]:
    """What gunicorn's workers and this process share: production-like settings, the benchmark's URLconf."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.api_settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "DB_POOL_MAX_SIZE": str(args.pool_size),
    }


# --- Data ----------------------------------------------------------------------------------------


def prepare(args) -> list[dict]:
    """The clients, each with its application, a fresh key and a fresh token: [{client_id, key, token}]."""
    from clients import services as client_services  # noqa: PLC0415
    from clients.models import ApiKey, Client  # noqa: PLC0415
    from invitations.services import Invitee, issue_invitation  # noqa: PLC0415
    from vault import services as vault_services  # noqa: PLC0415
    from vault.models import SigningKey  # noqa: PLC0415

    if not SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).exists():
        vault_services.rotate_signing_key(actor=None)
    codes = [f"bench-api-{n:04d}" for n in range(args.clients)]
    have = set(Client.objects.filter(code__in=codes).values_list("code", flat=True))
    started = time.perf_counter()
    for code in codes:
        if code not in have:
            client = client_services.create_client(
                actor=None, code=code, legal_name=code, domain=f"{code}.bench.test", region="EU", tier="enterprise"
            )
            client_services.configure_application(
                actor=None, client=client, app_code=APP_CODE, configuration={"locale": "en-GB"}
            )
    if len(have) < len(codes):
        say(f"  {len(codes) - len(have)} clients created ({time.perf_counter() - started:.1f} s)")

    run = time.strftime("%Y%m%d-%H%M%S")  # keys and invitees are unique per run
    for old in ApiKey.objects.filter(client__code__in=codes, revoked_at__isnull=True, name__startswith="bench "):
        client_services.revoke_api_key(actor=None, api_key=old)
    world = []
    for client in Client.objects.filter(code__in=codes).order_by("code"):
        _, key = client_services.create_api_key(
            actor=None, client=client, name=f"bench {run}", scopes=["configuration:read", "invitations:redeem"],
            rate_limit=RATE_LIMIT,
        )  # fmt: skip
        application = client.applications.get(app_code=APP_CODE)
        _, token = issue_invitation(
            actor=None, client=client, application=application,
            invitee=Invitee("Bench Invitee", f"invitee-{run}@{client.code}.bench.test", ""),
            expires_in=timedelta(days=1),
        )  # fmt: skip
        world.append({"client_id": str(client.pk), "key": key, "token": token})
    say(f"  {len(world)} keys and tokens issued ({time.perf_counter() - started:.1f} s)")
    return world


def request_for(name: str, bare: bool, entry: dict) -> tuple[str, str, bytes | None, dict]:
    _, method, api_path, bare_path = PATHS[name]
    headers = {"X-Bench-Client": entry["client_id"]} if bare else {"Authorization": f"Bearer {entry['key']}"}
    body = None
    if method == "POST":
        body = json.dumps({"token": entry["token"]}).encode()
        headers["Content-Type"] = "application/json"
    return method, bare_path if bare else api_path, body, headers


# --- Round trips, in process ---------------------------------------------------------------------


class RoundTrips:
    """Counts what this process sends to PostgreSQL: every cursor statement (timed) and every transaction command.
    One cursor statement is one round trip, also when it holds several (`tenant_context.from_definer`)."""

    def __init__(self):
        self.sent: list[tuple[str, float]] | None = None

    def install(self) -> None:
        import psycopg  # noqa: PLC0415
        from psycopg._connection_base import BaseConnection  # noqa: PLC0415

        counter = self
        execute, exec_command = psycopg.Cursor.execute, BaseConnection._exec_command

        def counted_execute(cursor, query, *args, **kwargs):
            began = time.perf_counter_ns()
            try:
                return execute(cursor, query, *args, **kwargs)
            finally:
                counter.note(query, time.perf_counter_ns() - began)  # after the BEGIN it may have sent first

        def counted_command(connection, command, *args, **kwargs):
            counter.note(command, 0)  # BEGIN (before a transaction's first statement), COMMIT, ROLLBACK: not timed
            return exec_command(connection, command, *args, **kwargs)

        psycopg.Cursor.execute = counted_execute
        BaseConnection._exec_command = counted_command

    def note(self, statement, nanoseconds: float) -> None:
        if self.sent is not None:
            if isinstance(statement, bytes):
                statement = statement.decode()
            elif not isinstance(statement, str):
                statement = repr(statement)  # a psycopg.sql.Composed
            self.sent.append((" ".join(statement.split()), nanoseconds))

    def of(self, run) -> list[tuple[str, float]]:
        self.sent = []
        try:
            run()
            return self.sent
        finally:
            self.sent = None


def category(statement: str) -> str:
    if "api_authenticate" in statement:
        return "authentication + rate limit + metering"
    if "INSERT INTO api_usage" in statement or statement.startswith("WITH provisional"):
        return "metering"  # only a request that ends in an error moves its count (api.metering)
    if statement.startswith("RESET app.client_id") or "current_setting('app.client_id'" in statement:
        return "pool hand-over"  # the reset when a connection goes back, the check when it is taken
    return "work"


def count_round_trips(world: list[dict], samples: int = 20) -> dict:
    """name → {API: [statements of one request], bare: […], per-request averages} with Django's test client."""
    from django.db import close_old_connections  # noqa: PLC0415
    from django.test import Client as HttpClient  # noqa: PLC0415

    counter = RoundTrips()
    counter.install()
    http = HttpClient(HTTP_HOST="127.0.0.1")
    results = {}
    for name in PATHS:
        results[name] = {}
        for bare in (False, True):
            counts = []
            example = None
            for index in range(samples + 5):
                method, url, body, headers = request_for(name, bare, world[index % len(world)])
                extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k != "Content-Type"}

                def send(method=method, url=url, body=body, extra=extra):
                    if method == "POST":
                        response = http.post(url, body, content_type="application/json", **extra)
                    else:
                        response = http.get(url, **extra)
                    if response.status_code != 200:
                        raise SystemExit(f"{method} {url} answered {response.status_code}: {response.content[:300]!r}")
                    # What the handler does when the request finishes (the test client leaves it out): the
                    # connection goes back to the pool, whose reset clears any tenant.
                    close_old_connections()

                sent = counter.of(send)
                if index >= 5:  # the first requests open connections and fill caches
                    counts.append(sent)
                    example = example or sent
            milliseconds = Counter()
            for sent in counts:
                for statement, nanoseconds in sent:
                    milliseconds[category(statement)] += nanoseconds / 1e6 / len(counts)
            results[name]["bare" if bare else "API"] = {
                "mean": statistics.mean(len(sent) for sent in counts),
                "by_category": Counter(category(statement) for statement, _ in example),
                "milliseconds": milliseconds,
                "example": [statement for statement, _ in example],
            }
    return results


# --- gunicorn and the load -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(args, port: int, log) -> subprocess.Popen:
    env = {**os.environ, "FLOWS_BENCH_API_DATABASE": args.database}
    command = [
        str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--chdir", str(ROOT),
        "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)  # noqa: S603
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}; its log: {log.name}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"gunicorn did not answer /healthz within 60 s; its log: {log.name}")


def load(port: int, world: list[dict], path: tuple[str, bool], seconds: float, concurrency: int) -> dict:
    """`concurrency` threads sending requests for `seconds`, each over the clients in its own stride."""
    name, bare = path
    prepared = [request_for(name, bare, entry) for entry in world]
    latencies: list[list[int]] = [[] for _ in range(concurrency)]
    failures: Counter = Counter()
    start = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def worker(number: int) -> None:
        mine = latencies[number]
        index = number
        start.wait()
        while time.perf_counter() < deadline[0]:
            method, url, body, headers = prepared[index % len(prepared)]
            index += concurrency
            began = time.perf_counter_ns()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request(method, url, body, headers)
            response = connection.getresponse()
            response.read()
            connection.close()
            mine.append(time.perf_counter_ns() - began)
            if response.status != 200:
                failures[response.status] += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    samples = [value for chunk in latencies for value in chunk]
    if failures:
        raise SystemExit(f"{name} ({'bare' if bare else 'API'}): non-200 answers {dict(failures)}")
    return {"requests": len(samples), "seconds": elapsed, "latencies": samples}


def same_answers(port: int, world: list[dict]) -> None:
    """The bare views answer what the API answers (the same work), for the first client."""
    for name in PATHS:
        bodies = []
        for bare in (False, True):
            method, url, body, headers = request_for(name, bare, world[0])
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request(method, url, body, headers)
            response = connection.getresponse()
            bodies.append((response.status, json.loads(response.read())))
        if bodies[0] != bodies[1]:
            raise SystemExit(f"{name}: the API and the bare view disagree:\n  {bodies[0]}\n  {bodies[1]}")


def measure(args, port: int, world: list[dict]) -> dict:
    """Each round gives every path `--seconds`, in slices of `--slice` seconds: per endpoint, the API
    and the bare view alternate slice by slice (which one goes first alternating too), so that the
    machine's drift — other work starting or stopping — falls on both alike. Each slice is one
    `load()`: its threads start together and it ends when the last request in flight has answered,
    so a slice's time includes the tail of its slowest requests (the slower path's, the API's, the
    longer: the shorter the slice, the more this counts against the API, never for it)."""
    runs = [(name, bare) for name in PATHS for bare in (False, True)]
    results = {run: [] for run in runs}
    names = list(PATHS)
    pairs = max(1, round(args.seconds / args.slice))
    slice_seconds = args.seconds / pairs
    say(
        f"warm-up: 1 s per path; then {args.rounds} rounds x {len(runs)} paths x {args.seconds:g} s, "
        f"API and bare alternating in slices of {slice_seconds:g} s …"
    )
    for name, bare in runs:
        load(port, world, (name, bare), 1.0, args.concurrency)
    for round_number in range(args.rounds):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in order:
            totals = {bare: {"requests": 0, "seconds": 0.0, "latencies": []} for bare in (False, True)}
            for pair in range(pairs):
                first = (pair + round_number) % 2 == 1  # bare first in every other pair
                for bare in (first, not first):
                    part = load(port, world, (name, bare), slice_seconds, args.concurrency)
                    totals[bare]["requests"] += part["requests"]
                    totals[bare]["seconds"] += part["seconds"]
                    totals[bare]["latencies"].extend(part["latencies"])
            for bare in (False, True):
                results[(name, bare)].append(totals[bare])
        say(f"  round {round_number + 1} done")
    return results


# --- Report --------------------------------------------------------------------------------------


def report(args, results: dict, trips: dict) -> None:
    from django.db import connections  # noqa: PLC0415

    with connections["console"].cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    say("")
    say(
        f"PostgreSQL {version}; gunicorn {args.workers} sync workers, pool {args.pool_size}; {args.clients} clients "
        f"and keys; {args.concurrency} client threads; {args.rounds} rounds x {args.seconds:g} s per path "
        f"(API and bare alternating, slices of {args.seconds / max(1, round(args.seconds / args.slice)):g} s)"
    )
    say(f"{'endpoint':<28} {'path':<5} {'requests':>8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6}")
    for name, (label, *_) in PATHS.items():
        rates = {}
        for bare in (False, True):
            rounds = results[(name, bare)]
            requests = sum(r["requests"] for r in rounds)
            rates[bare] = requests / sum(r["seconds"] for r in rounds)
        for bare in (False, True):
            rounds = results[(name, bare)]
            samples = sorted(value for r in rounds for value in r["latencies"])
            p50 = statistics.median(samples) / 1e6
            p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1e6
            ratio = f"{rates[False] / rates[True]:>6.2f}" if not bare else f"{'':>6}"
            say(
                f"{label if not bare else '':<28} {'bare' if bare else 'API':<5} "
                f"{sum(r['requests'] for r in rounds):>8} {rates[bare]:>8.1f} {p50:>7.2f} {p99:>7.2f} {ratio}"
            )
    say("ratio = API req/s / bare req/s, target ≥ 0.80 (req/s over all rounds; p50/p99 over every request)")
    for name, (label, *_) in PATHS.items():
        ratios = [
            (api["requests"] / api["seconds"]) / (bare["requests"] / bare["seconds"])
            for api, bare in zip(results[(name, False)], results[(name, True)], strict=True)
        ]
        listed = " ".join(f"{ratio:.2f}" for ratio in ratios)
        say(f"  per round, {label}: {listed} (median {statistics.median(ratios):.2f})")
    say("")
    say("Database round trips per request (counted at the driver in process, 20 requests each):")
    say(f"{'endpoint':<28} {'API':>5} {'bare':>5} {'auth+rate+meter':>15}   (and their ms, serial)")
    for name, (label, *_) in PATHS.items():
        api, bare = trips[name]["API"], trips[name]["bare"]
        auth = "authentication + rate limit + metering"
        api_ms, bare_ms = sum(api["milliseconds"].values()), sum(bare["milliseconds"].values())
        extra = api["by_category"][auth] + api["by_category"]["metering"]
        say(
            f"{label:<28} {api['mean']:>5.1f} {bare['mean']:>5.1f} {extra:>15}   "
            f"({api['milliseconds'][auth] + api['milliseconds']['metering']:.2f} ms of "
            f"{api_ms:.2f} ms in statements; bare {bare_ms:.2f} ms)"
        )
    say("One API request, POST /invitations/validate, in order (one line per round trip):")
    for statement in trips["validate"]["API"]["example"]:
        say(f"  [{category(statement)}] {statement[:150]}")


def main() -> None:
    args = parse_args()
    os.environ.update(server_environment(args))
    setup_django(args.database)
    say("preparing clients, keys and tokens …")
    world = prepare(args)
    trips = count_round_trips(world)
    port = free_port()
    with tempfile.NamedTemporaryFile("w+", prefix="bench-api-gunicorn-", suffix=".log", delete=False) as log:
        say(f"starting gunicorn on 127.0.0.1:{port} ({args.workers} workers; log {log.name}) …")
        server = start_gunicorn(args, port, log)
        try:
            same_answers(port, world)
            results = measure(args, port, world)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    Path(log.name).unlink()  # kept only when something failed
    report(args, results, trips)
    if args.drop:
        drop_database(args.database)


if __name__ == "__main__":
    main()
