"""The scaling set-up, started by the tests themselves: a real pgbouncer in transaction mode in front of the
test database, and a real streaming replica of the test cluster (pg_basebackup). Both fail, never skip,
when they cannot start. pgbouncer is session-scoped (tests opt in to it per test with `through_pgbouncer`);
the replica is module-scoped, so the `replica` alias exists only while tests/scaling/test_replica.py runs."""

from __future__ import annotations

import copy
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import environ
import psycopg
import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from config.routers import REPLICA_ALIAS
from scripts import devbouncer, devdb
from tests.conftest import connect_as_superuser

# Fewer server connections than the threads that share them: multiplexing is what is under test.
POOL_SIZE = 2
# A database entry with a single server connection: two clients are then certain to share it.
SINGLE = "flows_single_server"
RUNTIME_ALIASES = (settings.CONSOLE_DB_ALIAS, settings.TENANT_DB_ALIAS)


def test_database() -> str:
    return connections[DEFAULT_DB_ALIAS].settings_dict["NAME"]


@pytest.fixture(scope="session")
def pgbouncer(django_db_setup, django_db_blocker):
    """pgbouncer (transaction pooling, POOL_SIZE server connections) in front of the test database."""
    if devbouncer.binary() is None:
        pytest.fail(f"{devbouncer.INSTALL_HINT}; `make test` installs it (scripts/devbouncer.py ensure).")
    server = connections[settings.TENANT_DB_ALIAS].settings_dict
    roles = [settings.CONSOLE_ROLE, settings.APP_ROLE]
    with django_db_blocker.unblock(), connect_as_superuser() as superuser:
        secrets = dict(superuser.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)", [roles]))
    assert sorted(secrets) == sorted(roles) and all(s.startswith("SCRAM-SHA-256$") for s in secrets.values()), (
        "the runtime roles need SCRAM-SHA-256 passwords for pgbouncer's auth_file"
    )
    bouncer = devbouncer.start(
        server_host=server["HOST"] or "127.0.0.1",
        server_port=int(server["PORT"]),
        scram_secrets=secrets,
        admin_user=settings.CONSOLE_ROLE,
        pool_size=POOL_SIZE,
        single_server_databases={SINGLE: test_database()},
    )
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
def through_pgbouncer(pgbouncer):
    """The console and tenant aliases reach the test database through pgbouncer, configured exactly as
    `DATABASE_POOLER=pgbouncer` configures them (config/settings.py)."""
    saved = {}
    for alias in RUNTIME_ALIASES:
        connections[alias].close()
        settings_dict = connections[alias].settings_dict  # the same dict new connections (threads) are made from
        saved[alias] = copy.deepcopy(settings_dict)
        settings_dict.update(HOST="127.0.0.1", PORT=str(pgbouncer.port), DISABLE_SERVER_SIDE_CURSORS=True)
        settings_dict["OPTIONS"] = {**settings_dict.get("OPTIONS", {}), "prepare_threshold": None}
    try:
        yield pgbouncer
    finally:
        for alias in RUNTIME_ALIASES:
            connections[alias].close()
            settings_dict = connections[alias].settings_dict
            settings_dict.clear()
            settings_dict.update(saved[alias])


def bouncer_admin(bouncer: devbouncer.Bouncer) -> psycopg.Connection:
    """pgbouncer's admin console (SHOW POOLS, SHOW SERVERS …), which speaks the simple query protocol only."""
    password = connections[settings.CONSOLE_DB_ALIAS].settings_dict["PASSWORD"]
    return psycopg.connect(
        host="127.0.0.1", port=bouncer.port, dbname="pgbouncer", user=bouncer.admin_user, password=password,
        autocommit=True, cursor_factory=psycopg.ClientCursor,
    )  # fmt: skip


# --- The streaming replica ----------------------------------------------------------------------------


@dataclass
class Replica:
    port: int
    folder: Path
    user: str | None
    superuser: dict

    def connect_superuser(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.superuser["USER"], password=self.superuser["PASSWORD"],
            dbname=test_database(), autocommit=True,
        )  # fmt: skip

    def connect_as(self, alias: str) -> psycopg.Connection:
        """The replica as a runtime alias's role sees it."""
        params = connections[alias].get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(key, None)
        params.update(host="127.0.0.1", port=self.port)
        return psycopg.connect(**params, autocommit=False)


# A bounded wait, not a timing: about a minute of polls before a replica that never catches up fails the test.
REPLAY_POLLS, REPLAY_POLL_PAUSE = 3000, 0.02


def wait_for_replay(replica: Replica) -> None:
    """Until the replica has replayed everything the primary has written so far (bounded: a replica
    that never catches up fails the test, never hangs it)."""
    with connect_as_superuser() as primary:
        target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    with replica.connect_superuser() as standby:
        for _ in range(REPLAY_POLLS):
            if standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]).fetchone()[0]:
                return
            time.sleep(REPLAY_POLL_PAUSE)
        pytest.fail(f"the replica did not replay up to {target} after {REPLAY_POLLS} polls")


def _run(command: list[str], user: str | None, env: dict | None = None) -> subprocess.CompletedProcess:
    if user:
        command = ["runuser", "-u", user, "--", *command]
    return subprocess.run(command, check=False, capture_output=True, text=True, env=env)  # noqa: S603


@pytest.fixture(scope="module")
def replica(django_db_setup, django_db_blocker):
    """A hot standby of the test cluster, made with pg_basebackup and streaming from it, on its own port;
    the `replica` alias (the console role, as REPLICA_DATABASE_URL would configure it) points at it."""
    assert settings.DATABASE_SUPERUSER_URL, "the replica is cloned as the superuser: set DATABASE_SUPERUSER_URL"
    superuser = environ.Env.db_url_config(settings.DATABASE_SUPERUSER_URL)
    bin_dir = devdb.pg_bin_dir()
    user = devdb.server_os_user()
    folder = Path(tempfile.mkdtemp(prefix="flows-replica-"))
    data = folder / "data"
    log = folder / "postgres.log"
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        devdb.make_traversable(folder)
    folder.chmod(0o700)
    port = devbouncer.free_port()
    started = False
    try:
        backup = _run(
            [str(bin_dir / "pg_basebackup"), "-h", superuser["HOST"] or "127.0.0.1", "-p", str(superuser["PORT"]),
             "-U", superuser["USER"], "-D", str(data), "-X", "stream", "--checkpoint=fast", "-R", "--no-sync"],
            user, env={**os.environ, "PGPASSWORD": superuser["PASSWORD"]},
        )  # fmt: skip
        if backup.returncode != 0:
            pytest.fail(f"pg_basebackup of the test cluster failed:\n{backup.stderr.strip()}")
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' -c hot_standby=on"
        result = _run(
            [str(bin_dir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options], user
        )
        started = result.returncode == 0
        if not started:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else result.stderr
            pytest.fail(f"the replica did not start:\n{tail}")
        standby = Replica(port=port, folder=folder, user=user, superuser=superuser)
        with standby.connect_superuser() as connection:
            assert connection.execute("SELECT pg_is_in_recovery()").fetchone()[0], "the replica is not a standby"
        alias_settings = copy.deepcopy(connections[settings.CONSOLE_DB_ALIAS].settings_dict)
        alias_settings.update(HOST="127.0.0.1", PORT=str(port))
        settings.DATABASES[REPLICA_ALIAS] = alias_settings
        connections.settings[REPLICA_ALIAS] = alias_settings  # the same dict in practice; said explicitly
        yield standby
    finally:
        if REPLICA_ALIAS in settings.DATABASES:
            connections[REPLICA_ALIAS].close()
            del connections[REPLICA_ALIAS]
            settings.DATABASES.pop(REPLICA_ALIAS, None)
            connections.settings.pop(REPLICA_ALIAS, None)
        if started:
            _run([str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w"], user)
        shutil.rmtree(folder, ignore_errors=True)
