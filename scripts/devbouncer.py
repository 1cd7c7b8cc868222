"""A local pgbouncer in transaction pooling mode, for the tests and the load benchmark (docs/scaling.md).

`python scripts/devbouncer.py ensure` installs Debian's `pgbouncer` package when it is missing
(as root, with apt-get), or says precisely why it cannot; `make test` runs it. `start(...)` runs
one pgbouncer in the foreground on a free 127.0.0.1 port in front of a PostgreSQL server:
transaction pooling, a small server pool, SCRAM authentication with the roles' SCRAM secrets
(read from `pg_authid` by the caller, never plaintext passwords). Standard library only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# pgbouncer refuses to run as root; then it runs as the embedded database's system user.
OS_USER_WHEN_ROOT = "flowsdb"
INSTALL_HINT = (
    "pgbouncer is needed by the scaling tests (tests/scaling) and `make bench-load`: "
    "install Debian's `pgbouncer` package (apt-get install pgbouncer), or put a pgbouncer 1.18+ binary on PATH"
)


def binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (str(path) for path in (Path("/usr/sbin/pgbouncer"), Path("/usr/bin/pgbouncer")) if path.exists()), None
    )


def ensure_installed() -> str:
    """The pgbouncer binary, installed with apt-get when missing and possible; exits 1 with a clear message if not."""
    if found := binary():
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        reason = "not running as root" if os.geteuid() != 0 else "apt-get is not available"
        print(f"devbouncer: error: {INSTALL_HINT} ({reason}, so it cannot be installed here).", file=sys.stderr)
        sys.exit(1)
    print("devbouncer: installing Debian's pgbouncer package (apt-get) …", flush=True)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "pgbouncer"]
    if subprocess.run(install, env=environment, check=False, capture_output=True).returncode != 0:
        # A fresh container has no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=environment, check=False, capture_output=True)
        result = subprocess.run(install, env=environment, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            print(f"devbouncer: error: apt-get could not install pgbouncer:\n{tail}\n{INSTALL_HINT}.", file=sys.stderr)
            sys.exit(1)
    if found := binary():
        return found
    print(f"devbouncer: error: apt-get ran but no pgbouncer binary was found. {INSTALL_HINT}.", file=sys.stderr)
    sys.exit(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@dataclass
class Bouncer:
    """A running pgbouncer: its port, its process (started by us) and its folder."""

    port: int
    process: subprocess.Popen
    folder: Path
    log: Path
    admin_user: str
    pool_size: int
    _stopped: bool = field(default=False, repr=False)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start(
    *,
    server_host: str,
    server_port: int,
    scram_secrets: dict[str, str],
    admin_user: str,
    pool_size: int,
    max_client_conn: int = 200,
    single_server_databases: dict[str, str] | None = None,
) -> Bouncer:
    """Start pgbouncer in transaction mode in front of every database of `server_host:server_port`.

    `scram_secrets` maps each role allowed through to its `pg_authid.rolpassword` (SCRAM-SHA-256):
    pgbouncer checks the client's SCRAM proof against it and reuses the client's keys to log in to
    the server, so no plaintext password is written anywhere. `admin_user` may run SHOW commands
    on the `pgbouncer` admin database (the tests count server connections with it).
    `pool_size` is per role (pgbouncer pools per database and role), so the console and the tenant role
    each have that many server connections. `single_server_databases` maps extra database names to a
    real database served through exactly one server connection (the tests use one to make two clients
    share a server connection).
    """
    singles = [
        f"{name} = host={server_host} port={server_port} dbname={real} pool_size=1 max_db_connections=1"
        for name, real in (single_server_databases or {}).items()
    ]
    executable = ensure_installed()
    folder = Path(tempfile.mkdtemp(prefix="flows-pgbouncer-"))
    port = free_port()
    log = folder / "pgbouncer.log"
    auth_file = folder / "userlist.txt"
    auth_file.write_text("".join(f"{_quote(user)} {_quote(secret)}\n" for user, secret in scram_secrets.items()))
    config = folder / "pgbouncer.ini"
    config.write_text(
        "\n".join(
            [
                "[databases]",
                *singles,
                f"* = host={server_host} port={server_port}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "pool_mode = transaction",
                # Per (database, role): the console and the tenant role each get `pool_size`.
                f"default_pool_size = {pool_size}",
                "min_pool_size = 0",
                "reserve_pool_size = 0",
                f"max_client_conn = {max_client_conn}",
                "auth_type = scram-sha-256",
                f"auth_file = {auth_file}",
                f"admin_users = {admin_user}",
                f"stats_users = {admin_user}",
                # Transaction mode: nothing session-level may be relied on, so no reset query runs.
                "server_reset_query =",
                # Django's psycopg backend sends none; listed so a driver that does is not refused.
                "ignore_startup_parameters = extra_float_digits,options",
                f"logfile = {log}",
                # One line per connection would be most of the log under load.
                "log_connections = 0",
                "log_disconnections = 0",
                "",
            ]
        )
    )
    command = [executable, str(config)]
    if os.geteuid() == 0:
        user = _os_user()
        entry = pwd.getpwnam(user)
        for path in (folder, auth_file, config):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        command = ["runuser", "-u", user, "--", *command]
    folder.chmod(0o700)
    auth_file.chmod(0o600)
    # Its stderr goes to a file: an unread pipe fills up under load and blocks pgbouncer for good.
    with (folder / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=folder)
    bouncer = Bouncer(port, process, folder, log, admin_user, pool_size)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = (folder / "stderr.log").read_text(errors="replace")
            tail = bouncer.log_tail()
            bouncer.stop()
            raise RuntimeError(f"pgbouncer exited with {process.returncode}:\n{stderr}{tail}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return bouncer
        time.sleep(0.05)
    bouncer.stop()
    raise RuntimeError("pgbouncer did not listen within 30 s")


def _os_user() -> str:
    try:
        pwd.getpwnam(OS_USER_WHEN_ROOT)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER_WHEN_ROOT],
            check=True,
        )
    return OS_USER_WHEN_ROOT


def main() -> None:
    if sys.argv[1:] != ["ensure"]:
        print("usage: python scripts/devbouncer.py ensure   (installs pgbouncer when missing)", file=sys.stderr)
        sys.exit(2)
    print(f"devbouncer: {ensure_installed()} is available")


if __name__ == "__main__":
    main()
