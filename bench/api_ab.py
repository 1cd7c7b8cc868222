"""The tenant API next to the bare view in process, request by request: an A/B of two checkouts under the same load.

Run by hand, never from the test suite, after `bench/api.py` has prepared its database:

    .venv/bin/python bench/api_ab.py --requests 2500
    # two checkouts at once, so the machine's load hits both alike:
    .venv/bin/python bench/api_ab.py --root /tmp/main-checkout & .venv/bin/python bench/api_ab.py; wait

Django's test client sends `GET /api/v1/applications` (a fresh key per client, issued here) and the
bare `GET /bench/bare/applications` alternately, each followed by what the handler does when a
request ends (the connection goes back to the pool), and prints the bare/API ratio of wall time
and of this process's CPU time. No gunicorn and no HTTP: it measures the code of the checkout
named by `--root` (default: this one), not the server.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  .venv/bin/python bench/api_ab.py --requests 2500",
    )
    parser.add_argument("--requests", type=int, default=2500, help="timed requests per path (default 2500)")
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose code runs (default: this one)")
    parser.add_argument("--database", default="flows_bench_api", help="database (default flows_bench_api)")
    args = parser.parse_args()
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    root = Path(args.root).resolve()
    if not (root / "manage.py").is_file():
        parser.error(f"--root {root} is not a checkout of this project")
    sys.path.insert(0, str(root))
    os.chdir(root)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.api_settings",
            "FLOWS_BENCH_API_DATABASE": args.database,
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "DB_POOL_MAX_SIZE": "4",
        }
    )
    os.environ.setdefault("SECRET_KEY", os.urandom(32).hex())
    import django  # noqa: PLC0415

    django.setup()
    from django.db import close_old_connections  # noqa: PLC0415
    from django.test import Client as HttpClient  # noqa: PLC0415

    from clients import services  # noqa: PLC0415
    from clients.models import Client  # noqa: PLC0415

    clients = list(Client.objects.filter(code__startswith="bench-api-").order_by("code")[:20])
    if not clients:
        raise SystemExit(f"no benchmark clients in {args.database}: run bench/api.py first")
    run = time.time_ns()
    keys = [
        (str(client.pk), services.create_api_key(
            actor=None, client=client, name=f"bench ab {run}", scopes=["configuration:read"], rate_limit=1_000_000
        )[1])
        for client in clients
    ]  # fmt: skip
    http = HttpClient(HTTP_HOST="127.0.0.1")
    close_old_connections()

    def api(index: int) -> None:
        answer = http.get("/api/v1/applications", HTTP_AUTHORIZATION=f"Bearer {keys[index % len(keys)][1]}")
        if answer.status_code != 200:
            raise SystemExit(f"the API answered {answer.status_code}")
        close_old_connections()

    def bare(index: int) -> None:
        answer = http.get("/bench/bare/applications", HTTP_X_BENCH_CLIENT=keys[index % len(keys)][0])
        if answer.status_code != 200:
            raise SystemExit(f"the bare view answered {answer.status_code}")
        close_old_connections()

    for index in range(200):  # connections opened, caches filled
        api(index)
        bare(index)
    wall = {api: 0.0, bare: 0.0}
    cpu = {api: 0.0, bare: 0.0}
    for index in range(args.requests):
        for path in (api, bare):
            began, began_cpu = time.perf_counter(), time.process_time()
            path(index)
            wall[path] += time.perf_counter() - began
            cpu[path] += time.process_time() - began_cpu
    per = 1e3 / args.requests
    print(
        f"{root}: wall ms API {wall[api] * per:.3f} bare {wall[bare] * per:.3f} ratio {wall[bare] / wall[api]:.3f}"
        f" | CPU ms API {cpu[api] * per:.3f} bare {cpu[bare] * per:.3f} ratio {cpu[bare] / cpu[api]:.3f}"
    )


if __name__ == "__main__":
    main()
