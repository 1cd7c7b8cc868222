"""What the benchmarks share: a database of their own on the configured server, and output.

Benchmarks run by hand (`make bench`), never from the test suite. Each works in its own
database, migrated like the real one, so it never touches development data.
"""

from __future__ import annotations

import logging
import os
import statistics
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def interleaved(rounds: int, paths: dict) -> dict:
    """Median seconds per path over `rounds`, the paths run in alternating order so drift hits them alike."""
    samples = {name: [] for name in paths}
    for round_number in range(rounds):
        order = list(paths.items()) if round_number % 2 == 0 else list(reversed(paths.items()))
        for name, run in order:
            began = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - began)
    return {name: statistics.median(times) for name, times in samples.items()}


def say(message: str) -> None:
    print(message, flush=True)


# --- Database ------------------------------------------------------------------------------------


def use_database(name: str) -> None:
    """Create `name` as the owner if needed and point every alias at it, before Django connects."""
    import psycopg  # noqa: PLC0415
    from django.conf import settings  # noqa: PLC0415
    from psycopg import sql  # noqa: PLC0415

    owner = settings.DATABASES["default"]
    with psycopg.connect(**_conninfo(owner), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            say(f"creating database {name}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    for alias in settings.DATABASES.values():
        alias["NAME"] = name


def drop_database(name: str) -> None:
    import psycopg  # noqa: PLC0415
    from django.conf import settings  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415
    from psycopg import sql  # noqa: PLC0415

    connections.close_all()
    owner = {**settings.DATABASES["default"], "NAME": "postgres"}
    with psycopg.connect(**_conninfo(owner), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    say(f"dropped database {name}")


def _conninfo(settings_dict: dict) -> dict:
    keys = {"NAME": "dbname", "USER": "user", "PASSWORD": "password", "HOST": "host", "PORT": "port"}
    return {key: str(settings_dict[name]) for name, key in keys.items() if settings_dict.get(name)}


def setup_django(database: str) -> None:
    """Point every alias at `database` (created if missing), set Django up and migrate it."""
    from django.core.management import call_command  # noqa: PLC0415

    use_database(database)
    django.setup()
    logging.getLogger("clients.dbroles").setLevel(logging.WARNING)
    say(f"migrating {database} (roles, grants and policies as in production) …")
    call_command("migrate", verbosity=0, interactive=False)
