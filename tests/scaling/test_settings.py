"""DATABASE_POOLER and REPLICA_DATABASE_URL, read by config/settings.py in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PRINT_DATABASES = (
    "import json; from django.conf import settings; "
    "print(json.dumps({alias: {'user': d.get('USER'), 'host': d.get('HOST'), 'test': d.get('TEST', {}),"
    " 'no_server_cursors': d.get('DISABLE_SERVER_SIDE_CURSORS', False),"
    " 'prepare': d.get('OPTIONS', {}).get('prepare_threshold', 'default')}"
    " for alias, d in settings.DATABASES.items()}))"
)


def databases(**environment: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **environment}
    return subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", PRINT_DATABASES], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def test_database_pooler_pgbouncer_turns_off_what_transaction_pooling_cannot_carry():
    plain = json.loads(databases(DATABASE_POOLER="").stdout)
    pooled = json.loads(databases(DATABASE_POOLER="pgbouncer").stdout)
    for alias in ("console", "tenant"):
        assert plain[alias]["no_server_cursors"] is False and plain[alias]["prepare"] == "default"
        assert pooled[alias]["no_server_cursors"] is True and pooled[alias]["prepare"] is None
    assert "replica" not in pooled


def test_an_unknown_pooler_is_refused_with_a_clear_message():
    result = databases(DATABASE_POOLER="pgpool")
    assert result.returncode != 0
    assert "DATABASE_POOLER must be empty or 'pgbouncer', not 'pgpool'" in result.stderr


def test_replica_database_url_adds_the_replica_alias_mirroring_console_in_tests():
    result = databases(
        REPLICA_DATABASE_URL="postgres://flows_console:pw@replica.internal:5432/flows", DATABASE_POOLER="pgbouncer"
    )
    replica = json.loads(result.stdout)["replica"]
    assert (replica["user"], replica["host"]) == ("flows_console", "replica.internal")
    assert replica["test"] == {"MIRROR": "console"}
    assert replica["no_server_cursors"] is True
    tenant_only = databases(
        REPLICA_DATABASE_URL="postgres://flows_console:pw@replica.internal:5432/flows",
        FLOWS_TENANT_ONLY="true", TENANT_DATABASE_URL="postgres://flows_app:pw@db.internal:5432/flows",
    )  # fmt: skip
    assert "replica" not in json.loads(tenant_only.stdout), "an API worker never holds the console role's credentials"
