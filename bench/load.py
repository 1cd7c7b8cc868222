"""Load and soak: a mixed workload against gunicorn through pgbouncer (transaction mode), with correctness checks.

Run by hand, never from the test suite:

    make bench-load                      # or: .venv/bin/python bench/load.py --seconds 90
    .venv/bin/python bench/load.py --seconds 60 --workers 4 --pool-size 3 --api-threads 6 --staff-threads 2

It works in its own database (`flows_bench_load`, created by the owner role on the configured server and
migrated like the real one) and prepares: `--clients` clients (enterprise tier), each with an application,
an API key (scope invitations:redeem, no effective rate limit), `--invitations` pending invitations to
redeem and `--expiring` invitations made overdue (work for cleanup_invitations); and a staff superuser.

Then it starts a real pgbouncer (scripts/devbouncer.py: transaction pooling, `--pool-size` server
connections, fewer than the workers' client connections) and gunicorn (`--workers` sync workers, the
product's settings with DATABASE_POOLER=pgbouncer, DEBUG off, both runtime aliases through pgbouncer), all
on 127.0.0.1, and for `--seconds` runs at the same time:

* staff threads, each signed in with its own session, walking admin changelists (clients, applications,
  invitations, audit events);
* API threads, each taking the next invitation and sending POST /invitations/validate then
  POST /invitations/redeem with its client's key; every tenth invitation is redeemed by two requests at
  once (exactly one must succeed, the other must be refused as already_used);
* `manage.py cleanup_invitations` every `--cleanup-every` seconds, through pgbouncer too.

Reported: requests, req/s, p50/p99 per kind, errors (anything but the expected answer: must be 0), the
redemptions counted per token against the database (every invitation redeemed exactly once), pgbouncer's
transaction and server-connection figures, and `verify_audit` over every chain at the end.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.api_settings"
from bench.common import drop_database, say, setup_django  # noqa: E402
from scripts import devbouncer, devdb  # noqa: E402

RATE_LIMIT = 1_000_000
APP_CODE = "onboarding"
STAFF_USERNAME = "bench-load-staff"
STAFF_PAGES = [
    "/admin/clients/client/",
    "/admin/clients/application/",
    "/admin/invitations/invitation/",
    "/admin/audit/auditevent/",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  .venv/bin/python bench/load.py --seconds 90 --workers 4 --pool-size 3",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the mixed load runs (default 60)")
    parser.add_argument("--clients", type=int, default=20, help="clients, one API key each (default 20)")
    parser.add_argument("--invitations", type=int, default=150, help="invitations to redeem per client (default 150)")
    parser.add_argument("--expiring", type=int, default=20, help="overdue invitations per client (default 20)")
    parser.add_argument("--api-threads", type=int, default=6, help="API load threads (default 6)")
    parser.add_argument("--staff-threads", type=int, default=2, help="signed-in staff threads (default 2)")
    parser.add_argument("--cleanup-every", type=float, default=5.0, help="seconds between cleanup runs (default 5)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument("--pool-size", type=int, default=3, help="pgbouncer server connections (default 3)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of --seconds per server (default 1)")
    parser.add_argument(
        "--compare-direct", action="store_true",
        help="also serve the same load from a gunicorn connected straight to PostgreSQL, rounds interleaved",
    )  # fmt: skip
    parser.add_argument("--database", default="flows_bench_load", help="database (default flows_bench_load)")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database afterwards")
    args = parser.parse_args()
    for name, least in (("seconds", 1), ("clients", 1), ("invitations", 1), ("expiring", 0), ("api_threads", 1),
                        ("staff_threads", 0), ("cleanup_every", 0.5), ("workers", 1), ("pool_size", 1),
                        ("rounds", 1)):  # fmt: skip
        if getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')} must be at least {least}")
    if not args.database.replace("_", "").isalnum():
        parser.error("--database must be letters, digits and underscores")
    return args


# --- Data ----------------------------------------------------------------------------------------


def prepare(args) -> tuple[list[dict], str]:
    """Clients, keys, invitations to redeem ([{client, key, token, invitation_id}]) and the staff password."""
    from django.conf import settings  # noqa: PLC0415
    from django.contrib.auth import get_user_model  # noqa: PLC0415
    from django.utils import timezone  # noqa: PLC0415

    from clients import services as client_services  # noqa: PLC0415
    from clients.models import ApiKey, Client  # noqa: PLC0415
    from invitations.models import Invitation  # noqa: PLC0415
    from invitations.services import Invitee, issue_invitation  # noqa: PLC0415
    from vault import services as vault_services  # noqa: PLC0415
    from vault.models import SigningKey  # noqa: PLC0415

    if not SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).exists():
        vault_services.rotate_signing_key(actor=None)
    started = time.perf_counter()
    run = time.strftime("%Y%m%d-%H%M%S")  # keys and invitees are unique per run
    codes = [f"bench-load-{n:03d}" for n in range(args.clients)]
    have = set(Client.objects.filter(code__in=codes).values_list("code", flat=True))
    for code in codes:
        if code not in have:
            client = client_services.create_client(
                actor=None, code=code, legal_name=code, domain=f"{code}.bench.test", region="EU", tier="enterprise"
            )
            client_services.configure_application(actor=None, client=client, app_code=APP_CODE)
    for old in ApiKey.objects.filter(client__code__in=codes, revoked_at__isnull=True, name__startswith="load "):
        client_services.revoke_api_key(actor=None, api_key=old)
    world, overdue = [], []
    for client in Client.objects.filter(code__in=codes).order_by("code"):
        _, key = client_services.create_api_key(
            actor=None, client=client, name=f"load {run}", scopes=["invitations:redeem"], rate_limit=RATE_LIMIT
        )
        application = client.applications.get(app_code=APP_CODE)
        for number in range(args.invitations + args.expiring):
            invitation, token = issue_invitation(
                actor=None, client=client, application=application,
                invitee=Invitee("Load Invitee", f"load-{run}-{number}@{client.code}.bench.test", ""),
                expires_in=timedelta(days=1),
            )  # fmt: skip
            if number < args.invitations:
                world.append({"client": client.code, "key": key, "token": token, "invitation_id": invitation.pk})
            else:
                overdue.append(invitation.pk)
        say(
            f"  {client.code}: key and {args.invitations + args.expiring} invitations "
            f"({time.perf_counter() - started:.0f} s)"
        )
    # Overdue without waiting for them: cleanup_invitations, running during the load, expires them.
    Invitation.objects.using(settings.CONSOLE_DB_ALIAS).filter(pk__in=overdue).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    password = secrets.token_urlsafe(18)
    user, _ = get_user_model().objects.get_or_create(username=STAFF_USERNAME)
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
    say(
        f"  {len(world)} invitations to redeem, {len(overdue)} overdue, 1 staff user "
        f"({time.perf_counter() - started:.0f} s)"
    )
    return world, password


# --- Servers -------------------------------------------------------------------------------------


def start_pgbouncer(args) -> devbouncer.Bouncer:
    import environ  # noqa: PLC0415
    import psycopg  # noqa: PLC0415
    from django.conf import settings  # noqa: PLC0415

    if not settings.DATABASE_SUPERUSER_URL:
        raise SystemExit("bench/load.py reads the roles' SCRAM secrets as the superuser: set DATABASE_SUPERUSER_URL")
    superuser = environ.Env.db_url_config(settings.DATABASE_SUPERUSER_URL)
    roles = [settings.CONSOLE_ROLE, settings.APP_ROLE]
    with psycopg.connect(
        host=superuser["HOST"], port=superuser["PORT"], user=superuser["USER"], password=superuser["PASSWORD"],
        dbname=args.database, autocommit=True,
    ) as connection:  # fmt: skip
        secrets_ = dict(
            connection.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)", [roles])
        )
    server = settings.DATABASES[settings.TENANT_DB_ALIAS]
    return devbouncer.start(
        server_host=server["HOST"] or "127.0.0.1", server_port=int(server["PORT"]), scram_secrets=secrets_,
        admin_user=settings.CONSOLE_ROLE, pool_size=args.pool_size,
    )  # fmt: skip


def server_environment(args, bouncer: devbouncer.Bouncer | None) -> dict[str, str]:
    """gunicorn's and the cleanup command's environment: both runtime aliases through pgbouncer, or (with
    `bouncer` None, for the comparison) straight to PostgreSQL with the same persistent connections."""
    from django.conf import settings  # noqa: PLC0415

    environment = {**{k: v for k, v in devdb.read_env().items() if k not in os.environ}, **os.environ}

    def url(alias: str) -> str:
        config = settings.DATABASES[alias]
        where = f"127.0.0.1:{bouncer.port}" if bouncer else f"{config['HOST'] or '127.0.0.1'}:{config['PORT']}"
        return f"postgres://{quote(config['USER'])}:{quote(config['PASSWORD'])}@{where}/{args.database}"

    environment.update(
        DJANGO_SETTINGS_MODULE="bench.api_settings",
        FLOWS_BENCH_API_DATABASE=args.database,
        CONSOLE_DATABASE_URL=url(settings.CONSOLE_DB_ALIAS),
        TENANT_DATABASE_URL=url(settings.TENANT_DB_ALIAS),
        DATABASE_POOLER="pgbouncer" if bouncer else "",
        DB_CONN_MAX_AGE="60",  # each worker keeps its client connections to pgbouncer
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_COOKIES="false",
        FLOWS_STAFF_REQUIRE_MFA="false",
        LOG_LEVEL="WARNING",
    )
    return environment


def start_gunicorn(args, environment: dict, port: int, log) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--chdir", str(ROOT),
        "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)  # noqa: S603
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}; its log: {log.name}")
        try:
            if request(port, "GET", "/healthz")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"gunicorn did not answer /healthz within 60 s; its log: {log.name}")


# --- Load ----------------------------------------------------------------------------------------


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One request on its own connection (gunicorn's sync workers close it): (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


class Session:
    """A signed-in staff browser: the session and CSRF cookies, kept by hand."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def send(self, method: str, path: str, form: dict | None = None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers |= {
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://127.0.0.1:{self.port}/",
            }
        status, response_headers, content = request(self.port, method, path, body, headers)
        for name, value in response_headers:
            if name.lower() == "set-cookie":
                cookie_name, cookie_value = value.split(";", 1)[0].split("=", 1)
                self.cookies[cookie_name] = cookie_value
        return status, content

    def sign_in(self, password: str) -> None:
        status, page = self.send("GET", "/admin/login/?next=/admin/")
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if status != 200 or not match:
            raise SystemExit(f"the staff sign-in page answered {status} without a CSRF token")
        form = {"csrfmiddlewaretoken": match.group(1).decode(), "username": STAFF_USERNAME, "password": password,
                "next": "/admin/"}  # fmt: skip
        status, _ = self.send("POST", "/admin/login/?next=/admin/", form)
        if status != 302 or "sessionid" not in self.cookies:
            raise SystemExit(f"staff sign-in failed (status {status})")


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: dict[str, list[int]] = defaultdict(list)
        self.errors: Counter = Counter()
        self.error_examples: list[str] = []
        self.refused_twice = 0
        self.successes: Counter = Counter()  # invitation id -> 200 answers to redeem

    def timed(self, kind: str, send):
        began = time.perf_counter_ns()
        try:
            result = send()
        except OSError as error:
            result = (0, str(error).encode())
        elapsed = time.perf_counter_ns() - began
        with self.lock:
            self.latencies[kind].append(elapsed)
        return result

    def error(self, kind: str, status: int, body: bytes) -> None:
        with self.lock:
            self.errors[(kind, status)] += 1
            if len(self.error_examples) < 5:
                self.error_examples.append(f"{kind} {status}: {body[:200]!r}")


def api_worker(port: int, queue, recorder: Recorder, stop: threading.Event) -> None:
    def post(entry: dict, action: str):
        body = json.dumps({"token": entry["token"]}).encode()
        headers = {"Authorization": f"Bearer {entry['key']}", "Content-Type": "application/json"}
        return request(port, "POST", f"/api/v1/invitations/{action}", body, headers)

    while not stop.is_set():
        try:
            number, entry = next(queue)
        except StopIteration:
            return
        status, _, body = recorder.timed("API validate", lambda e=entry: post(e, "validate"))
        if status != 200:
            recorder.error("API validate", status, body)
        if number % 10 == 0:  # two redemptions at once: exactly one succeeds
            answers: list = []

            def race(entry=entry, answers=answers) -> None:
                answers.append(recorder.timed("API redeem", lambda: post(entry, "redeem")))

            racers = [threading.Thread(target=race) for _ in range(2)]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join()
        else:
            answers = [recorder.timed("API redeem", lambda e=entry: post(e, "redeem"))]
        for status, _, body in answers:
            if status == 200:
                with recorder.lock:
                    recorder.successes[entry["invitation_id"]] += 1
            elif b"already_used" in body and len(answers) == 2:
                with recorder.lock:
                    recorder.refused_twice += 1
            else:
                recorder.error("API redeem", status, body)


def staff_worker(session: Session, recorder: Recorder, stop: threading.Event, offset: int) -> None:
    for page in itertools.islice(itertools.cycle(STAFF_PAGES), offset, None):
        if stop.is_set():
            return
        status, body = recorder.timed("staff changelist", lambda p=page: session.send("GET", p))
        if status != 200:
            recorder.error("staff changelist", status, body)


def cleanup_worker(environment: dict, every: float, runs: list[dict], stop: threading.Event) -> None:
    command = [sys.executable, str(ROOT / "manage.py"), "cleanup_invitations", "--json"]
    while True:
        result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False, cwd=ROOT)  # noqa: S603
        try:
            data = json.loads(result.stdout)
        except json.JSONDecodeError:
            data = {}
        runs.append({"code": result.returncode, **data, "stderr": result.stderr[-300:] if result.returncode else ""})
        if stop.wait(every):
            return


class SharedQueue:
    """The invitations, each handed to exactly one API request sequence, across threads and phases."""

    def __init__(self, world: list[dict]):
        self.lock = threading.Lock()
        self.entries = iter(enumerate(world))
        self.ran_out = False  # then API threads idled: the throughput figures are not comparable

    def __next__(self):
        with self.lock:
            try:
                return next(self.entries)
            except StopIteration:
                self.ran_out = True
                raise


def warmed_sessions(args, port: int, password: str) -> list[Session]:
    """The staff threads' sessions, signed in before any clock starts; every worker warmed up."""
    sessions = [Session(port) for _ in range(args.staff_threads)]
    for session in sessions:
        session.sign_in(password)
    for _ in range(args.workers * 3):
        for page in STAFF_PAGES:
            if sessions:
                sessions[0].send("GET", page)
            else:
                request(port, "GET", "/healthz")
    return sessions


def run_phase(args, mode: dict, queue: SharedQueue, bouncer: devbouncer.Bouncer | None) -> tuple[int, float]:
    """`--seconds` of the mixed load against one server; returns (requests, seconds)."""
    recorder: Recorder = mode["recorder"]
    before = sum(len(samples) for samples in recorder.latencies.values())
    stop = threading.Event()

    def guarded(target, *arguments) -> threading.Thread:
        """A load thread whose crash is an error of the run, never a silent gap in it."""

        def run() -> None:
            try:
                target(*arguments)
            except Exception as error:  # reported below: the run fails
                recorder.error(f"{target.__name__} crashed", 0, repr(error).encode())

        return threading.Thread(target=run)

    threads = [guarded(api_worker, mode["port"], queue, recorder, stop) for _ in range(args.api_threads)]
    threads += [guarded(staff_worker, session, recorder, stop, n) for n, session in enumerate(mode["sessions"])]
    threads.append(guarded(cleanup_worker, mode["environment"], args.cleanup_every, mode["cleanup_runs"], stop))
    if bouncer is not None:
        threads.append(guarded(bouncer_monitor, bouncer, args.database, mode["peaks"], stop))
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    stop.wait(args.seconds)
    stop.set()
    elapsed = time.perf_counter() - began  # requests in flight finish after it, and are counted
    for thread in threads:
        thread.join()
    return sum(len(samples) for samples in recorder.latencies.values()) - before, elapsed


# --- Checks and report -----------------------------------------------------------------------------


def redemption_check(world: list[dict], successes: Counter) -> tuple[dict, list[str]]:
    """Every invitation: the number of 200 answers to its redemption equals its `used_count` in the database
    (0 or 1), and the redeemed ones are accepted."""
    from invitations.models import Invitation  # noqa: PLC0415

    rows = Invitation.objects.filter(pk__in=[entry["invitation_id"] for entry in world])
    stored = {pk: (used, status) for pk, used, status in rows.values_list("pk", "used_count", "status")}
    accepted = Invitation.Status.ACCEPTED
    mismatches = [
        str(entry["invitation_id"]) for entry in world
        if (answers := successes[entry["invitation_id"]]) > 1
        or stored[entry["invitation_id"]][0] != answers
        or (answers == 1) != (stored[entry["invitation_id"]][1] == accepted)
    ]  # fmt: skip
    return {
        "200 answers": sum(successes.values()),
        "invitations with exactly one 200": sum(1 for count in successes.values() if count == 1),
        "with more than one": sum(1 for count in successes.values() if count > 1),
        "accepted with used_count 1 in the database": sum(
            1 for used, st in stored.values() if used == 1 and st == accepted
        ),
        "mismatches": len(mismatches),
    }, mismatches[:5]


def bouncer_admin(bouncer: devbouncer.Bouncer):
    import psycopg  # noqa: PLC0415
    from django.conf import settings  # noqa: PLC0415

    password = settings.DATABASES[settings.CONSOLE_DB_ALIAS]["PASSWORD"]
    return psycopg.connect(
        host="127.0.0.1", port=bouncer.port, dbname="pgbouncer", user=bouncer.admin_user, password=password,
        autocommit=True, cursor_factory=psycopg.ClientCursor,
    )  # fmt: skip


def rows(admin, command: str, database: str) -> list[dict]:
    cursor = admin.execute(command)
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor if row[0] == database]


def bouncer_monitor(bouncer: devbouncer.Bouncer, database: str, peaks: dict, stop: threading.Event) -> None:
    """The most client and server connections pgbouncer held at once during the load, sampled every 0.2 s."""
    with bouncer_admin(bouncer) as admin:
        while not stop.wait(0.2):
            pools = rows(admin, "SHOW POOLS", database)
            clients = sum(p["cl_active"] + p["cl_waiting"] for p in pools)
            servers = sum(p["sv_active"] + p["sv_idle"] + p["sv_used"] + p["sv_tested"] + p["sv_login"] for p in pools)
            peaks["client connections (peak)"] = max(peaks.get("client connections (peak)", 0), clients)
            peaks["server connections (peak)"] = max(peaks.get("server connections (peak)", 0), servers)
            peaks["clients waiting (peak)"] = max(
                peaks.get("clients waiting (peak)", 0), sum(p["cl_waiting"] for p in pools)
            )


def bouncer_figures(bouncer: devbouncer.Bouncer, database: str, peaks: dict) -> dict:
    with bouncer_admin(bouncer) as admin:
        stats = next(iter(rows(admin, "SHOW STATS", database)), {})
    return {"transactions": stats.get("total_xact_count", 0), "queries": stats.get("total_query_count", 0), **peaks}


def verify_audit(environment: dict) -> dict:
    command = [sys.executable, str(ROOT / "manage.py"), "verify_audit", "--json"]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False, cwd=ROOT)  # noqa: S603
    try:
        return {"exit": result.returncode, **json.loads(result.stdout)}
    except json.JSONDecodeError:
        return {"exit": result.returncode, "stderr": result.stderr[-500:]}


def percentile(samples: list[int], fraction: float) -> float:
    return samples[min(len(samples) - 1, int(len(samples) * fraction))] / 1e6


def report_mode(name: str, mode: dict) -> tuple[int, bool]:
    recorder: Recorder = mode["recorder"]
    elapsed = sum(seconds for _, seconds in mode["phases"])
    say(f"{name}: {len(mode['phases'])} phase(s), {elapsed:.1f} s")
    say(f"  {'kind':<18} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    total = 0
    for kind in ("staff changelist", "API validate", "API redeem"):
        samples = sorted(recorder.latencies.get(kind, []))
        errors = sum(n for (k, _), n in recorder.errors.items() if k == kind)
        total += len(samples)
        if samples:
            say(
                f"  {kind:<18} {len(samples):>8} {len(samples) / elapsed:>8.1f} "
                f"{statistics.median(samples) / 1e6:>8.2f} {percentile(samples, 0.99):>8.2f} {errors:>6}"
            )
    error_total = sum(recorder.errors.values())
    say(f"  {'all':<18} {total:>8} {total / elapsed:>8.1f} {'':>8} {'':>8} {error_total:>6}")
    for example in recorder.error_examples:
        say(f"  error: {example}")
    say(f"  double redemptions refused as already_used (expected, not errors): {recorder.refused_twice}")
    failed = [run for run in mode["cleanup_runs"] if run["code"] != 0]
    say(
        f"  cleanup_invitations: {len(mode['cleanup_runs'])} runs, {len(failed)} failed, "
        f"{sum(run.get('expired', 0) for run in mode['cleanup_runs'])} invitations expired, "
        f"{sum(1 for run in mode['cleanup_runs'] if run.get('locked'))} found the lock held"
    )
    for run in failed[:3]:
        say(f"  cleanup failure: {run}")
    return error_total, not failed


def report(args, modes: dict, queue: SharedQueue, *, redemptions, bouncer: dict, audit: dict) -> bool:
    from django.db import connections  # noqa: PLC0415

    with connections["console"].cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    counts, mismatches = redemptions
    say("")
    say(
        f"PostgreSQL {version}; gunicorn {args.workers} sync workers; pgbouncer transaction mode, "
        f"{args.pool_size} server connections per role; {args.api_threads} API + {args.staff_threads} staff threads; "
        f"cleanup every {args.cleanup_every:g} s; {args.rounds} round(s) x {args.seconds:g} s per server"
    )
    errors, cleanups_ok = 0, True
    for name, mode in modes.items():
        mode_errors, mode_cleanups_ok = report_mode(name, mode)
        errors += mode_errors
        cleanups_ok = cleanups_ok and mode_cleanups_ok
    if "direct" in modes:
        rates = {name: [requests / seconds for requests, seconds in mode["phases"]] for name, mode in modes.items()}
        totals = {
            name: sum(r for r, _ in mode["phases"]) / sum(s for _, s in mode["phases"]) for name, mode in modes.items()
        }
        per_round = " ".join(f"{b / d:.2f}" for b, d in zip(rates["pgbouncer"], rates["direct"], strict=True))
        say(f"ratio pgbouncer / direct, req/s: {totals['pgbouncer'] / totals['direct']:.2f} (per round {per_round})")
    if queue.ran_out:
        say("WARNING: the invitations ran out before the end: API threads idled; rerun with more --invitations")
    say("redemptions (all phases): " + ", ".join(f"{name} {value}" for name, value in counts.items()))
    for mismatch in mismatches:
        say(f"  mismatch: invitation {mismatch}")
    say("pgbouncer: " + ", ".join(f"{name} {value}" for name, value in bouncer.items()))
    say(f"verify_audit: {json.dumps(audit, sort_keys=True)}")
    ok = (
        errors == 0
        and cleanups_ok
        and counts["mismatches"] == 0
        and counts["with more than one"] == 0
        and audit.get("exit") == 0
    )
    verdict = "OK — 0 errors, every redeemed invitation redeemed exactly once, audit chains intact"
    say(f"verdict: {verdict if ok else 'FAILED'}")
    return ok


def main() -> None:
    args = parse_args()
    os.environ.update(DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), LOG_LEVEL="WARNING")
    setup_django(args.database)
    say("preparing clients, keys, invitations and a staff user …")
    world, password = prepare(args)
    bouncer = start_pgbouncer(args)
    names = ["pgbouncer", "direct"] if args.compare_direct else ["pgbouncer"]
    modes: dict[str, dict] = {}
    servers = []
    queue = SharedQueue(world)
    try:
        for name in names:
            modes[name] = {
                "environment": server_environment(args, bouncer if name == "pgbouncer" else None),
                "port": devbouncer.free_port(), "recorder": Recorder(), "cleanup_runs": [], "peaks": {},
                "phases": [], "log": tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in the finally below
                    "w+", prefix=f"bench-load-{name}-", suffix=".log", delete=False
                ),
            }  # fmt: skip
        say(f"pgbouncer on 127.0.0.1:{bouncer.port} ({args.pool_size} server connections per role, transaction mode)")
        for name, mode in modes.items():
            say(
                f"starting gunicorn ({name}) on 127.0.0.1:{mode['port']} "
                f"({args.workers} workers; log {mode['log'].name})"
            )
            servers.append(start_gunicorn(args, mode["environment"], mode["port"], mode["log"]))
            mode["sessions"] = warmed_sessions(args, mode["port"], password)
        for round_number in range(args.rounds):
            order = names[round_number % len(names) :] + names[: round_number % len(names)]
            for name in order:
                say(f"round {round_number + 1}: mixed load for {args.seconds:g} s ({name}) …")
                modes[name]["phases"].append(
                    run_phase(args, modes[name], queue, bouncer if name == "pgbouncer" else None)
                )
        figures = bouncer_figures(bouncer, args.database, modes["pgbouncer"]["peaks"])
        audit = verify_audit(modes["pgbouncer"]["environment"])
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        bouncer.stop()
        for mode in modes.values():
            mode["log"].close()
    successes = sum((mode["recorder"].successes for mode in modes.values()), Counter())
    ok = report(args, modes, queue, redemptions=redemption_check(world, successes), bouncer=figures, audit=audit)
    if ok:
        for mode in modes.values():
            Path(mode["log"].name).unlink()
    if args.drop:
        drop_database(args.database)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
