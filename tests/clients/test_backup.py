"""backup_client / restore_client, and full dumps as the backup role: the doors operators use, on real PostgreSQL."""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader
from django.test import Client as HttpClient
from psycopg import sql

from audit.models import AuditEvent
from audit.services import create_checkpoints
from clients import backup, dbroles
from clients import services as client_services
from clients.models import ApiKey, Client
from invitations import services as invitation_services
from invitations import tokens
from invitations.services import Invitee
from tests.conftest import connect_as, connect_as_superuser
from vault import keyring
from vault import services as vault_services

ROOT = Path(__file__).resolve().parents[2]
TEXT_VALUE = "xoxb-slack-token-1234"
BINARY_VALUE = bytes(range(256)) * 3


@pytest.fixture
def acme(committed, make_client):
    """acme with every kind of data: applications, API keys (one revoked), invitations pending, accepted and
    revoked, a text and a binary secret with a reveal and a use, usage counters, and the audit chain of all that."""
    vault_services.rotate_signing_key(actor=None)
    tokens.public_keys.clear()
    client = make_client("acme", tier="pro")
    make_client("globex", tier="pro")  # a neighbour, never in acme's backup
    onboarding = client_services.configure_application(
        actor=None, client=client, app_code="onboarding", configuration={"locale": "de-CH"}
    )
    client_services.configure_application(actor=None, client=client, app_code="offboarding", features=[])
    _, secret_key = client_services.create_api_key(
        actor=None, client=client, name="ci", scopes=["configuration:read"], application=onboarding
    )
    revoked_key, _ = client_services.create_api_key(actor=None, client=client, name="old", scopes=["invitations:read"])
    client_services.revoke_api_key(actor=None, api_key=revoked_key)
    text = vault_services.set_secret(
        actor=None, client=client, provider="slack", secret_type="api_key", value=TEXT_VALUE, tags=["chat"]
    )
    vault_services.set_secret(actor=None, client=client, provider="okta", secret_type="certificate", value=BINARY_VALUE)
    vault_services.reveal_secret(actor=None, secret=text, reason="ticket 1")
    vault_services.use_secret(actor=None, secret=text)

    def issue(name, email, **options):
        return invitation_services.issue_invitation(
            actor=None,
            client=client,
            application=onboarding,
            invitee=Invitee(name, email),
            expires_in=timedelta(days=7),
            **options,
        )

    issue("Ada", "ada@acme.example")
    _, token = issue("Grace", "grace@acme.example")
    invitation_services.redeem_invitation(actor=None, token=token)
    revoked, _ = issue("Mallory", "mallory@acme.example")
    invitation_services.revoke_invitation(actor=None, invitation=revoked, reason="sent by mistake")
    # Usage counters, as the API writes them: two successes and a 404.
    api = HttpClient(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
    paths = ("/api/v1/client", "/api/v1/client", "/api/v1/applications/missing")
    assert [api.get(path).status_code for path in paths] == [200, 200, 404]
    create_checkpoints(actor=None, client=client)  # a signed checkpoint of acme's chain, restored verbatim too
    return client


def superuser_rows(database: str | None, client_id, *, skip_serial: bool = True) -> dict[str, list]:
    """Every backed-up table's rows of the client, as the superuser sees them (RLS does not apply), sorted."""
    rows = {}
    config = connections[DEFAULT_DB_ALIAS].settings_dict
    import environ
    import psycopg

    superuser = environ.Env.db_url_config(settings.DATABASE_SUPERUSER_URL)
    with psycopg.connect(
        host=superuser["HOST"], port=superuser["PORT"], user=superuser["USER"], password=superuser["PASSWORD"],
        dbname=database or config["NAME"], autocommit=True,
    ) as connection:  # fmt: skip
        for model in backup.backed_up_models():
            columns = [
                field.column
                for field in model._meta.concrete_fields
                if not (skip_serial and field.primary_key and field.get_internal_type() == "BigAutoField")
            ]
            query = sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.Identifier(model._meta.db_table),
                sql.Identifier(model._meta.get_field(model.tenant_key).column),
            )
            found = connection.execute(query, [str(client_id)]).fetchall()
            rows[model._meta.label] = sorted(map(repr, found))
    return rows


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def rewrite(path: Path, documents: list[dict]) -> None:
    """Write `documents` back with a correct checksum: a consistent forgery, not a damaged file."""
    body = b"".join(backup._line(document) for document in documents if "trailer" not in document)
    trailer = documents[-1]["trailer"] | {"sha256": hashlib.sha256(body).hexdigest()}
    path.write_bytes(body + backup._line({"trailer": trailer}))


# --- The invariant --------------------------------------------------------------------------------


def test_every_tenant_table_is_backed_up_or_left_out_with_a_reason():
    tenant = {model._meta.label for model in dbroles.tenant_models()}
    covered = set(backup.BACKED_UP) | set(backup.NOT_BACKED_UP)
    assert tenant - covered == set(), "a tenant table is not covered by backup_client: add it to clients/backup.py"
    assert covered - tenant == set()
    assert not set(backup.BACKED_UP) & set(backup.NOT_BACKED_UP)
    assert all(reason.strip() for reason in backup.NOT_BACKED_UP.values())


# --- Backup ---------------------------------------------------------------------------------------


def test_backup_is_one_self_describing_checksummed_file_and_needs_no_master_key(acme, manage, tmp_path, monkeypatch):
    def no_master_keys():
        raise AssertionError("a backup must never need the master keys")

    monkeypatch.setattr(keyring, "load", no_master_keys)
    path = tmp_path / "acme.flowsbak"
    run = manage("backup_client", "acme", "--output", str(path), "--json")
    assert run.code == 0, run.err
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    documents = read_lines(path)
    header, trailer = documents[0], documents[-1]["trailer"]
    assert header["format"] == "flows-client-backup" and header["version"] == 1
    assert header["client"] == {"id": str(acme.pk), "code": "acme"}
    assert header["keys"]["master"] == [keyring._load(settings.FLOWS_MASTER_KEYS, "").primary.id]
    [(_, audit_head)] = MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes("audit")
    assert header["installation"]["migrations"]["audit"] == audit_head
    body = path.read_bytes().rsplit(b"\n", 2)[0] + b"\n"
    assert hashlib.sha256(body).hexdigest() == trailer["sha256"] == run.json["sha256"]
    rows = documents[1:-1]
    counts = {label: sum(1 for row in rows if row["t"] == label) for label in backup.BACKED_UP}
    assert counts == trailer["counts"] == run.json["rows"]
    assert counts["clients.Client"] == 1 and counts["clients.Application"] == 2 and counts["clients.ApiKey"] == 2
    assert counts["invitations.Invitation"] == 3 and counts["vault.Secret"] == 2 and counts["vault.SecretAccess"] >= 4
    # api.Usage: get_client 2xx (2), get_application 4xx (1), and get_application 2xx at 0 — the 404's
    # provisional count, moved to 4xx (api.metering): a counter row, backed up like the others.
    assert counts["audit.AuditEvent"] > 10 and counts["audit.ChainHead"] == 1 and counts["api.Usage"] == 3
    assert counts["audit.Checkpoint"] == 1
    # Only acme's rows; values as stored: the secret's ciphertext, never its text.
    assert {row["r"].get("client_id", row["r"].get("id")) for row in rows} == {str(acme.pk)}
    assert TEXT_VALUE.encode() not in path.read_bytes()
    assert base64.b64encode(TEXT_VALUE.encode()) not in path.read_bytes()
    events = [row["r"] for row in rows if row["t"] == "audit.AuditEvent"]
    assert events[-1]["action"] == "client.backed_up"  # the backup is on record, and in its own file


def test_backup_streams_to_stdout_and_never_overwrites_a_file(acme, manage, tmp_path):
    existing = tmp_path / "exists.flowsbak"
    existing.write_text("keep me")
    run = manage("backup_client", "acme", "--output", str(existing))
    assert run.code == 1 and "exists" in run.err and existing.read_text() == "keep me"
    assert manage("backup_client", "acme", "--output", "-", "--json").code == 2
    run = manage("backup_client", "acme", "--output", "-")
    assert run.code == 0
    assert run.out.startswith('{"client":') and '"trailer"' in run.out.splitlines()[-1]


# --- Restore into the same installation -------------------------------------------------------------


@pytest.fixture
def acme_backup(acme, manage, tmp_path) -> Path:
    path = tmp_path / "acme.flowsbak"
    assert manage("backup_client", "acme", "--output", str(path)).code == 0
    return path


def test_restoring_over_an_existing_client_is_refused(acme_backup, manage):
    run = manage("restore_client", str(acme_backup), "--json")
    assert run.code == 1
    assert run.json["error"]["code"] == "client_exists"
    assert "--as-code" in run.json["error"]["message"]


def test_restoring_under_a_new_code_rekeys_the_client(acme, acme_backup, manage):
    before = superuser_rows(None, acme.pk)
    run = manage(
        "restore_client", str(acme_backup), "--as-code", "acme-copy", "--domain", "acme-copy.thepia.net", "--json"
    )
    assert run.code == 0, run.out + run.err
    copy = Client.objects.get(code="acme-copy")
    assert str(copy.pk) == run.json["client_id"] != str(acme.pk)
    assert run.json["not_restored"] == {
        "clients.ApiKey": 2,
        "audit.ChainHead": 1,
        "audit.Checkpoint": 1,
        "audit.AuditEvent": len(before["audit.AuditEvent"]),  # the file holds the backup's own event
    }
    # Secrets decrypt under the new client (new ids, new associated data), the original is untouched.
    assert (
        manage("reveal_secret", "acme-copy", "slack-api_key", "--reason", "drill", "--json").json["value"] == TEXT_VALUE
    )
    assert manage("reveal_secret", "acme-copy", "okta-certificate", "--reason", "drill", "--base64").out.strip() == (
        base64.b64encode(BINARY_VALUE).decode()
    )
    assert manage("reveal_secret", "acme", "slack-api_key", "--reason", "still there", "--json").json["value"] == (
        TEXT_VALUE
    )
    statuses = sorted(copy.invitations.values_list("status", flat=True))
    assert statuses == ["accepted", "revoked", "revoked"]  # the pending one's token names the old client
    assert not copy.api_keys.exists()
    run = manage("verify_audit", "--json")
    assert run.code == 0, run.out
    restored = manage("client_status", "acme-copy", "--json").json
    assert restored["client"]["code"] == "acme-copy"
    assert dbroles.verify() == []  # FORCE ROW LEVEL SECURITY is back on every table


def test_a_restore_failing_on_its_last_table_leaves_nothing(acme, acme_backup, manage, monkeypatch):
    before = {label: len(rows) for label, rows in superuser_rows(None, acme.pk).items()}
    clients_before = Client.objects.count()
    real_insert = backup._insert_table

    def fail_on_the_last_table(cursor, connection, model, names, rows):
        if model._meta.label == backup.BACKED_UP[-1]:
            raise RuntimeError("killed half-way")
        return real_insert(cursor, connection, model, names, rows)

    monkeypatch.setattr(backup, "_insert_table", fail_on_the_last_table)
    run = manage("restore_client", str(acme_backup), "--as-code", "acme-copy", "--domain", "acme-copy.thepia.net")
    assert run.code == 1 and "internal error" in run.err
    assert Client.objects.count() == clients_before
    assert {label: len(rows) for label, rows in superuser_rows(None, acme.pk).items()} == before
    with connect_as_superuser() as connection:
        for table in ("clients_application", "vault_secret", "vault_datakey", "invitations_invitation"):
            count = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
            client_count = connection.execute(
                sql.SQL("SELECT count(DISTINCT client_id) FROM {}").format(sql.Identifier(table))
            ).fetchone()[0]
            assert client_count <= 2, (table, count)  # acme and globex only
    assert dbroles.verify() == []


def test_dry_run_checks_everything_and_changes_nothing(acme_backup, manage):
    clients_before = Client.objects.count()
    run = manage("restore_client", str(acme_backup), "--as-code", "acme-copy", "--domain", "acme-copy.thepia.net",
                 "--dry-run", "--json")  # fmt: skip
    assert run.code == 0, run.out
    assert run.json["dry_run"] is True and run.json["rows"]["vault.Secret"] == 2
    assert Client.objects.count() == clients_before
    assert dbroles.verify() == []


def test_a_damaged_or_foreign_file_is_refused_before_anything(acme_backup, manage, tmp_path):
    data = acme_backup.read_bytes()
    damaged = tmp_path / "damaged.flowsbak"
    damaged.write_bytes(data.replace(b'"legal_name":"Acme Ltd"', b'"legal_name":"Acme Inc"'))
    run = manage("restore_client", str(damaged), "--as-code", "x-acme", "--json")
    assert run.json["error"]["code"] == "bad_backup" and "SHA-256" in run.json["error"]["message"]
    damaged.write_bytes(data[: len(data) // 2])
    assert manage("restore_client", str(damaged), "--as-code", "x-acme", "--json").json["error"]["code"] == "bad_backup"
    damaged.write_bytes(data.replace(b'"version":1', b'"version":2', 1))
    assert manage("restore_client", str(damaged), "--json").json["error"]["code"] == "bad_backup_version"
    damaged.write_bytes(b"not a backup\n")
    assert manage("restore_client", str(damaged), "--json").json["error"]["code"] == "bad_backup"
    assert manage("restore_client", str(tmp_path / "missing"), "--json").json["error"]["code"] == "no_file"
    assert manage("restore_client", str(acme_backup), "--as-code", "Not A Code!").code == 2
    assert manage("restore_client", str(acme_backup), "--domain", "x.example").code == 2


def test_a_missing_master_key_is_refused_naming_the_key(acme_backup, manage, settings):
    needed = read_lines(acme_backup)[0]["keys"]["master"][0]
    settings.FLOWS_MASTER_KEYS = f"other1:{base64.b64encode(os.urandom(32)).decode()}"
    run = manage("restore_client", str(acme_backup), "--as-code", "acme-copy", "--domain", "c.thepia.net", "--json")
    assert run.json["error"]["code"] == "master_key_missing"
    assert f"master key '{needed}'" in run.json["error"]["message"] and "other1" in run.json["error"]["message"]
    # The same id holding another key: it does not unwrap, and the message says which key.
    settings.FLOWS_MASTER_KEYS = f"{needed}:{base64.b64encode(os.urandom(32)).decode()}"
    run = manage("restore_client", str(acme_backup), "--as-code", "acme-copy", "--domain", "c.thepia.net", "--json")
    assert run.json["error"]["code"] == "decryption_failed" and needed in run.json["error"]["message"]


def test_a_forged_audit_chain_or_a_missing_audit_key_is_refused(acme, acme_backup, manage, settings, tmp_path):
    documents = read_lines(acme_backup)
    event = next(document for document in documents if document.get("t") == "audit.AuditEvent")
    event["r"]["target_label"] = "someone else"
    forged = tmp_path / "forged.flowsbak"
    rewrite(forged, documents)
    run = manage("restore_client", str(forged), "--json")
    assert run.json["error"]["code"] == "audit_chain_invalid"
    assert "edited" in run.json["error"]["message"]
    settings.FLOWS_AUDIT_KEYS = f"other:{base64.b64encode(os.urandom(32)).decode()}"
    run = manage("restore_client", str(acme_backup), "--json")
    assert run.json["error"]["code"] == "audit_key_missing"


# --- Round trip into a fresh database ------------------------------------------------------------


def _url(user: str, password: str, database: str) -> str:
    config = connections[DEFAULT_DB_ALIAS].settings_dict
    return f"postgres://{user}:{password}@{config['HOST']}:{config['PORT']}/{database}"


@pytest.fixture
def fresh_database():
    """A second database on the same server: migrated like the real one, with the same key rings."""
    name = f"test_restore_{uuid.uuid4().hex[:8]}"
    owner = connections[DEFAULT_DB_ALIAS].settings_dict
    import environ

    superuser = environ.Env.db_url_config(settings.DATABASE_SUPERUSER_URL)
    with connect_as_superuser() as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner["USER"]))
        )
    env = {
        **os.environ,
        "DATABASE_URL": _url(owner["USER"], owner["PASSWORD"], name),
        "DATABASE_SUPERUSER_URL": _url(superuser["USER"], superuser["PASSWORD"], name),
        "CONSOLE_DATABASE_URL": _url(settings.CONSOLE_ROLE, settings.DATABASES["console"]["PASSWORD"], name),
        "TENANT_DATABASE_URL": _url(settings.APP_ROLE, settings.DATABASES["tenant"]["PASSWORD"], name),
        "FLOWS_MASTER_KEYS": settings.FLOWS_MASTER_KEYS,
        "FLOWS_AUDIT_KEYS": settings.FLOWS_AUDIT_KEYS,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }

    def manage_there(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(  # noqa: S603 - our own manage.py
            [sys.executable, str(ROOT / "manage.py"), *argv], env=env, cwd=ROOT, capture_output=True, check=False
        )
        if check:
            assert result.returncode == 0, result.stderr.decode()[-2000:]
        return result

    manage_there("migrate", "--no-input", "-v0")
    try:
        yield name, manage_there
    finally:
        connections.close_all()
        with connect_as_superuser() as connection:
            connection.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _as_superuser_in(database: str, statement: str, params=()) -> set[tuple]:
    import environ
    import psycopg

    superuser = environ.Env.db_url_config(settings.DATABASE_SUPERUSER_URL)
    with psycopg.connect(
        host=superuser["HOST"], port=superuser["PORT"], user=superuser["USER"], password=superuser["PASSWORD"],
        dbname=database, autocommit=True,
    ) as connection:  # fmt: skip
        return set(connection.execute(statement, params).fetchall())


def search_labels(database: str) -> set[tuple]:
    return _as_superuser_in(database, "SELECT field, label FROM audit_searchlabel")


def event_labels(database: str, client_id) -> set[tuple]:
    return _as_superuser_in(
        database,
        "SELECT 'actor', upper(actor_label) FROM audit_auditevent WHERE client_id = %(c)s AND actor_label <> ''"
        " UNION SELECT 'target', upper(target_label) FROM audit_auditevent WHERE client_id = %(c)s"
        " AND target_label <> ''",
        {"c": client_id},
    )


def test_round_trip_into_a_fresh_database_restores_every_row_and_value(acme, manage, tmp_path, fresh_database):
    name, manage_there = fresh_database
    path = tmp_path / "acme.flowsbak"
    assert manage("backup_client", "acme", "--output", str(path)).code == 0
    snapshot = superuser_rows(None, acme.pk)
    assert manage("erase_client", "acme", "--confirm", "acme").code == 0  # gone for good here

    result = manage_there("restore_client", str(path), "--json")
    summary = json.loads(result.stdout)
    assert summary["client_id"] == str(acme.pk) and summary["rows"]["audit.AuditEvent"] == len(
        snapshot["audit.AuditEvent"]
    )
    restored = superuser_rows(name, acme.pk)
    # Every row equal, column for column (serial ids aside: they are the installation's to assign) …
    for label in backup.BACKED_UP:
        if label in ("audit.AuditEvent", "audit.ChainHead"):
            continue
        assert restored[label] == snapshot[label], label
    # … the audit chain verbatim, followed by the restore's own event, which moved the head by one.
    restored_events = restored["audit.AuditEvent"]
    assert set(snapshot["audit.AuditEvent"]) <= set(restored_events)
    assert len(restored_events) == len(snapshot["audit.AuditEvent"]) + 1
    assert any("client.restored" in event for event in set(restored_events) - set(snapshot["audit.AuditEvent"]))
    assert manage_there("verify_audit", "--client", "acme").returncode == 0
    assert manage_there("verify_audit").returncode == 0
    # The restored events fed the changelist's search table (audit/migrations/0008) as they were inserted.
    assert search_labels(name) >= event_labels(name, acme.pk) != set()
    # Every decrypted value equal.
    text = manage_there("reveal_secret", "acme", "slack-api_key", "--reason", "restore drill").stdout.decode()
    assert text.strip() == TEXT_VALUE
    binary = manage_there("reveal_secret", "acme", "okta-certificate", "--reason", "drill", "--base64").stdout
    assert base64.b64decode(binary) == BINARY_VALUE
    health = manage_there("health_check", "--json", check=False)
    assert json.loads(health.stdout)["ok"] is True, health.stdout

    # The erased client's backup holds no usable secret: its data keys are gone.
    erased = tmp_path / "acme-erased.flowsbak"
    assert manage("backup_client", "acme", "--output", str(erased)).code == 0
    documents = read_lines(erased)
    assert documents[0]["erased"] is True and documents[0]["keys"]["master"] == []
    assert all(d["r"]["wrapped_key"] is None for d in documents if d.get("t") == "vault.DataKey")
    run = manage("restore_client", str(erased), "--as-code", "acme-again", "--json")
    assert run.json["error"]["code"] == "client_erased"


# --- Full dumps as the backup role -------------------------------------------------------------------


def pg_binary(name: str) -> str:
    sys.path.insert(0, str(ROOT / "scripts"))
    import devdb

    return str(devdb.pg_bin_dir() / name)


def table_counts(database: str) -> dict[str, int]:
    import environ
    import psycopg

    superuser = environ.Env.db_url_config(settings.DATABASE_SUPERUSER_URL)
    with psycopg.connect(
        host=superuser["HOST"], port=superuser["PORT"], user=superuser["USER"], password=superuser["PASSWORD"],
        dbname=database, autocommit=True,
    ) as connection:  # fmt: skip
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
            )
        ]
        return {
            table: connection.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
            for table in sorted(tables)
        }


def test_pg_dump_as_the_backup_role_restores_every_row(acme, tmp_path):
    config = connections[DEFAULT_DB_ALIAS].settings_dict
    assert settings.FLOWS_BACKUP_PASSWORD, "the embedded database generates FLOWS_BACKUP_PASSWORD"
    dump = tmp_path / "flows.dump"
    env = {**os.environ, "PGPASSWORD": settings.FLOWS_BACKUP_PASSWORD}
    subprocess.run(  # noqa: S603 - PostgreSQL's own pg_dump
        [pg_binary("pg_dump"), "-h", config["HOST"], "-p", str(config["PORT"]), "-U", settings.BACKUP_ROLE,
         "-Fc", "-f", str(dump), config["NAME"]],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    source = table_counts(config["NAME"])
    assert source["clients_client"] == 2 and source["audit_auditevent"] > 10 and source["vault_secret"] == 2
    name = f"test_dump_{uuid.uuid4().hex[:8]}"
    import environ

    superuser = environ.Env.db_url_config(settings.DATABASE_SUPERUSER_URL)
    with connect_as_superuser() as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(config["USER"]))
        )
    try:
        result = subprocess.run(  # noqa: S603 - PostgreSQL's own pg_restore
            [pg_binary("pg_restore"), "-h", superuser["HOST"], "-p", str(superuser["PORT"]), "-U", superuser["USER"],
             "-d", name, "--exit-on-error", str(dump)],
            env={**os.environ, "PGPASSWORD": superuser["PASSWORD"]}, capture_output=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        assert table_counts(name) == source
    finally:
        with connect_as_superuser() as connection:
            connection.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_owners_dump_would_be_incomplete_which_is_why_the_backup_role_exists(acme, tmp_path):
    config = connections[DEFAULT_DB_ALIAS].settings_dict
    result = subprocess.run(  # noqa: S603 - PostgreSQL's own pg_dump
        [pg_binary("pg_dump"), "-h", config["HOST"], "-p", str(config["PORT"]), "-U", config["USER"],
         "-f", str(tmp_path / "owner.sql"), config["NAME"]],
        env={**os.environ, "PGPASSWORD": config["PASSWORD"]}, capture_output=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0 and b"row-level security" in result.stderr


def test_health_check_warns_when_a_dump_would_be_incomplete(committed, manage):
    run = manage("health_check", "--json")
    assert run.code == 0 and run.json["warnings"] == []
    assert any("backup role" in check for check in run.json["checks"])
    role = sql.Identifier(settings.BACKUP_ROLE)
    with connect_as_superuser() as connection:
        connection.execute(sql.SQL("ALTER ROLE {} NOBYPASSRLS").format(role))
        connection.execute(sql.SQL("REVOKE SELECT ON clients_client FROM {}").format(role))
    try:
        run = manage("health_check", "--json")
        assert run.code == 0
        warnings = run.json["warnings"]
        assert any("lacks BYPASSRLS" in warning for warning in warnings), warnings
        assert any("lacks SELECT on 1 table(s)" in warning and "clients_client" in warning for warning in warnings)
        assert manage("health_check", "--strict").code == 1
    finally:
        with connect_as_superuser() as connection:
            connection.execute(sql.SQL("ALTER ROLE {} BYPASSRLS").format(role))
        dbroles.apply()
    assert dbroles.backup_problems() == []


def test_verify_knows_the_backup_roles_exact_grants(committed):
    assert dbroles.verify() == []
    role = sql.Identifier(settings.BACKUP_ROLE)
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql.SQL("GRANT INSERT ON clients_application TO {}").format(role).as_string(cursor.connection))
        cursor.execute(
            sql.SQL("GRANT UPDATE ON SEQUENCE audit_auditevent_id_seq TO {}").format(role).as_string(cursor.connection)
        )
    try:
        problems = dbroles.verify()
        assert f"role {settings.BACKUP_ROLE} has INSERT on clients_application, which is not declared" in problems
        assert (
            f"role {settings.BACKUP_ROLE} has UPDATE on sequence audit_auditevent_id_seq, which is not declared"
            in problems
        )
    finally:
        dbroles.apply()
    assert dbroles.verify() == []
    with connect_as_superuser() as connection:
        attributes = connection.execute(
            "SELECT rolcanlogin, rolbypassrls, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = %s",
            [settings.BACKUP_ROLE],
        ).fetchone()
    assert attributes == (True, True, False, False)


def test_only_the_owner_may_keep_an_events_time_not_a_runtime_role_that_sets_the_flag(acme):
    """audit/migrations/0006: `flows.audit_restore` is any role's to set; the trigger also wants the table's owner."""
    with connect_as(settings.CONSOLE_DB_ALIAS) as connection:
        connection.execute("SELECT set_config('flows.audit_restore', 'on', true)")
        seq, hash_ = connection.execute(
            "SELECT seq, hash FROM audit_chainhead WHERE client_id = %s", [acme.pk]
        ).fetchone()
        backdated = connection.execute(
            "INSERT INTO audit_auditevent (occurred_at, client_id, client_code, actor_type, actor_id, actor_label,"
            " action, target_type, target_id, target_label, changes, user_agent, request_id, chain, seq, prev_hash,"
            " hash, key_id, mac) VALUES ('2000-01-01T00:00:00Z', %s, 'acme', 'system', '', '', 'client.updated', '',"
            " '', '', '{}', '', '', %s, %s, %s, %s, 'k1', %s) RETURNING occurred_at = now()",
            [acme.pk, str(acme.pk), seq + 1, hash_, "f" * 64, "0" * 64],
        ).fetchone()[0]
        connection.rollback()
    assert backdated is True  # the database's time, not the caller's


def test_a_restore_whose_session_is_killed_half_way_leaves_nothing(acme, acme_backup):
    """Not a simulated failure: the restore's own database session is terminated while its transaction holds
    every row. A superuser holds the client's tier row, so the restore's deferred foreign-key check (after all
    inserts and its audit event) waits there; then its backend is killed, as a `kill -9` or a lost connection
    would end it."""
    clients_before = Client.objects.count()
    outcome: dict = {}

    def restore():
        try:
            backup.restore_client(actor=None, path=acme_backup, as_code="acme-kill", domain="acme-kill.thepia.net")
        except Exception as error:
            outcome["error"] = error
        finally:
            connections.close_all()

    with connect_as_superuser() as blocker, connect_as_superuser() as watcher:
        blocker.execute("BEGIN")
        blocker.execute("SELECT 1 FROM clients_tier WHERE code = %s FOR UPDATE", [acme.tier_id])
        worker = threading.Thread(target=restore)
        worker.start()
        waiting = None
        for _ in range(1200):  # the restore reaches the tier row only after inserting every table
            waiting = watcher.execute(
                "SELECT pid, query FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND %s = ANY(pg_blocking_pids(pid))",
                [blocker.info.backend_pid],
            ).fetchone()
            if waiting or not worker.is_alive():
                break
            time.sleep(0.05)
        assert waiting, f"the restore never waited on the tier row: {outcome}"
        pid, statement = waiting
        assert statement == "SET CONSTRAINTS ALL IMMEDIATE", statement  # every row and its event written
        watcher.execute("SELECT pg_terminate_backend(%s)", [pid])
        blocker.execute("ROLLBACK")
    worker.join(timeout=30)
    assert not worker.is_alive() and "error" in outcome
    assert Client.objects.count() == clients_before
    assert not Client.objects.filter(code="acme-kill").exists()
    with connect_as_superuser() as connection:
        forced = connection.execute(
            "SELECT count(*) FROM pg_class WHERE relname = ANY(%s) AND NOT relforcerowsecurity",
            [[model._meta.db_table for model in backup.backed_up_models()]],
        ).fetchone()[0]
        assert forced == 0, "FORCE ROW LEVEL SECURITY is back on every table"
        for table in ("clients_application", "invitations_invitation", "audit_auditevent"):
            stray = connection.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE client_id NOT IN (SELECT id FROM clients_client)").format(
                    sql.Identifier(table)
                )
            ).fetchone()[0]
            assert stray == 0, table
    assert dbroles.verify() == []


@pytest.mark.parametrize(
    "forgery",
    [
        ("clients.ApiKey", "client_id", "of another client than the header's"),  # a key planted in globex
        ("invitations.Invitation", "client_id", "of another client than the header's"),
        ("audit.AuditEvent", "chain", "of another chain than the client's"),
        ("clients.Client", "code", "the client row's code is not the header's"),
    ],
)
def test_a_consistent_forgery_cannot_plant_rows_in_another_client(acme, acme_backup, manage, forgery):
    """The checksum is not a signature: a crafted file with a correct one must still only hold its own client's
    rows (found by the review: an API key with globex's client_id, restored under a new client, answered for
    globex)."""
    label, change, reason = forgery
    globex = Client.objects.get(code="globex")
    documents = read_lines(acme_backup)
    header = documents[0]
    new_id = str(uuid.uuid4())
    # A new client (so no "client exists" refusal first) whose rows say they are its own …
    for document in documents[1:-1]:
        row = document["r"]
        for key in ("id",) if document["t"] == "clients.Client" else ("client_id",):
            if row.get(key) == header["client"]["id"]:
                row[key] = new_id
        if row.get("chain") == header["client"]["id"]:
            row["chain"] = new_id
    header["client"] = {"id": new_id, "code": "evil"}
    client_row = next(d["r"] for d in documents if d.get("t") == "clients.Client")
    client_row |= {"code": "evil", "domain": "evil.example"}
    # … but for one row of `label`, which points elsewhere.
    target = next(d["r"] for d in documents if d.get("t") == label)
    target[change] = {"client_id": str(globex.pk), "chain": str(globex.pk), "code": "evil-twin"}[change]
    rewrite(acme_backup, documents)
    keys_before = sorted(ApiKey.objects.values_list("prefix", "client_id"))
    run = manage("restore_client", str(acme_backup))
    assert run.code == 1 and reason in run.err, run.err
    assert not Client.objects.filter(code__in=["evil", "evil-twin"]).exists()
    assert sorted(ApiKey.objects.values_list("prefix", "client_id")) == keys_before


# --- Hostile files with a correct checksum, and a backup whose writing fails -------------------------


def _row(documents: list[dict], label: str) -> dict:
    return next(document["r"] for document in documents if document.get("t") == label)


def _drop_column(documents):
    del _row(documents, "invitations.Invitation")["status"]
    return "row lacks the column(s) status"


def _extra_column(documents):
    _row(documents, "invitations.Invitation")["owner"] = "someone"
    return "has column(s) the header does not list: owner"


def _wrong_type(documents):
    _row(documents, "invitations.Invitation")["max_uses"] = "many"
    return "max_uses is not a whole number (found str)"


def _a_boolean_for_a_number(documents):
    _row(documents, "invitations.Invitation")["used_count"] = True
    return "used_count is not a whole number (found bool)"


def _array_of_numbers(documents):
    _row(documents, "invitations.Invitation")["permissions"] = ["read", 7]
    return "permissions is not a string (found int)"


def _out_of_range(documents):
    _row(documents, "invitations.Invitation")["max_uses"] = 2**40
    return "max_uses is out of the column's range"


def _not_null(documents):
    _row(documents, "invitations.Invitation")["expires_at"] = None
    return "expires_at is null, which the column does not allow"


def _not_a_uuid(documents):
    _row(documents, "clients.Application")["id"] = "not-a-uuid"
    return "row's id is not a valid UUIDField value"


def _not_a_time(documents):
    _row(documents, "invitations.Invitation")["created_at"] = "yesterday"
    return "created_at is not a valid DateTimeField value"


def _not_base64(documents):
    _row(documents, "vault.Secret")["ciphertext"] = "***"
    return "ciphertext is not a valid BinaryField value"


def _nul_character(documents):
    _row(documents, "clients.Client")["legal_name"] = "Acme\x00Ltd"
    return "legal_name holds a NUL character"


def _nul_nested_deeper_than_recursion(documents):
    # json.loads takes 400 levels; a recursive walk of them (2-3 frames a level) would not.
    nested = "Acme\x00Ltd"
    for _ in range(400):
        nested = {"a": nested}
    _row(documents, "invitations.Invitation")["restrictions"] = nested
    return "restrictions holds a NUL character"


def _too_long(documents):
    _row(documents, "clients.Client")["legal_name"] = "A" * 201
    return "legal_name is longer than the column's 200 characters"


def _unknown_table(documents):
    documents.insert(2, {"t": "auth.User", "r": {"id": 1, "username": "planted", "is_superuser": True}})
    return "line 3 is not a row of a known table (its table: auth.User)"


def _table_not_a_name(documents):
    documents.insert(2, {"t": ["clients.Client"], "r": {}})
    return "line 3 is not a row of a known table (its table: list)"


def _row_not_an_object(documents):
    documents.insert(2, {"t": "clients.Client", "r": ["x"]})
    return "line 3 is not a row"


def _header_without_a_table(documents):
    del documents[0]["tables"]["api.Usage"]
    return "the header does not list the table api.Usage"


def _header_without_a_column(documents):
    documents[0]["tables"]["invitations.Invitation"].remove("token_hash")
    return "the header's table invitations.Invitation lacks the column(s) token_hash"


def _header_without_keys(documents):
    del documents[0]["keys"]
    return "the header's key ids (master and audit) are not lists of names"


def _two_client_rows(documents):
    documents.insert(2, documents[1])
    documents[-1]["trailer"]["counts"]["clients.Client"] += 1
    documents[-1]["trailer"]["rows"] += 1
    return "line 3 is a second client row; a client backup holds exactly one"


def _no_client_row(documents):
    documents.pop(1)
    documents[-1]["trailer"]["counts"]["clients.Client"] -= 1
    documents[-1]["trailer"]["rows"] -= 1
    return "it holds no client row; a client backup holds exactly one"


def _trailer_not_counts(documents):
    documents[-1]["trailer"]["counts"] = ["clients.Client"]
    return "the trailer is not row counts and a SHA-256"


def _live_key_without_key(documents):
    _row(documents, "vault.DataKey")["wrapped_key"] = None
    return "is active but holds no wrapped key"


def _invitation_of_an_unknown_application(documents):
    _row(documents, "invitations.Invitation")["application_id"] = str(uuid.uuid4())
    return "is for an application the backup does not hold"


@pytest.mark.parametrize(
    "forge",
    [
        _drop_column, _extra_column, _wrong_type, _a_boolean_for_a_number, _array_of_numbers, _out_of_range, _not_null,
        _not_a_uuid, _not_a_time, _not_base64, _nul_character, _nul_nested_deeper_than_recursion, _too_long,
        _unknown_table, _table_not_a_name, _row_not_an_object, _header_without_a_table, _header_without_a_column,
        _header_without_keys, _two_client_rows, _no_client_row, _trailer_not_counts, _live_key_without_key,
        _invitation_of_an_unknown_application,
    ],
)  # fmt: skip
def test_a_malformed_file_with_a_correct_checksum_gets_a_clear_error_and_changes_nothing(
    acme, acme_backup, manage, forge
):
    documents = read_lines(acme_backup)
    expected = forge(documents)
    rewrite(acme_backup, documents)
    before = superuser_rows(None, acme.pk)
    clients_before = sorted(Client.objects.values_list("code", flat=True))
    run = manage("restore_client", str(acme_backup), "--as-code", "acme-copy", "--domain", "copy.thepia.net")
    assert run.code == 1, run.err
    assert expected in run.err and "internal error" not in run.err and "Traceback" not in run.err, run.err
    assert "Nothing was restored" in run.err
    if "row" in expected and "client row" not in expected:
        assert "line " in run.err  # names the line
    assert sorted(Client.objects.values_list("code", flat=True)) == clients_before
    assert superuser_rows(None, acme.pk) == before


def test_a_huge_line_is_refused_without_being_read_whole(acme, acme_backup, manage):
    documents = read_lines(acme_backup)
    _row(documents, "invitations.Invitation")["permissions"] = {"padding": "x" * backup.MAX_LINE_BYTES}
    rewrite(acme_backup, documents)  # a correct checksum: only the length is wrong
    run = manage("restore_client", str(acme_backup), "--as-code", "acme-copy", "--domain", "copy.thepia.net")
    assert run.code == 1
    assert f"is longer than {backup.MAX_LINE_BYTES:,} bytes" in run.err and "internal error" not in run.err
    assert not Client.objects.filter(code="acme-copy").exists()


class ClosedPipe(io.RawIOBase):
    """A pipe whose reader goes away after `accepts` bytes (`head -c`), or a disk that fills up."""

    def __init__(self, accepts: int, error: OSError):
        self.accepts, self.error = accepts, error

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self.accepts <= 0:
            raise self.error
        taken = min(len(data), self.accepts)
        self.accepts -= taken
        return taken


def actions_of(client) -> list[str]:
    return list(AuditEvent.objects.filter(client_id=client.pk).order_by("seq").values_list("action", flat=True))


@pytest.mark.parametrize("accepts", [0, 2000, 10**9])
def test_a_backup_to_stdout_whose_pipe_closes_is_recorded_as_failed(acme, manage, monkeypatch, accepts):
    pipe = ClosedPipe(accepts, BrokenPipeError(errno.EPIPE, "Broken pipe"))
    stdout = io.TextIOWrapper(io.BufferedWriter(pipe, buffer_size=1024))
    monkeypatch.setattr(sys, "stdout", stdout)
    run = manage("backup_client", "acme", "--output", "-")
    pipe.accepts = 10**12  # let the wrapper close quietly
    events = AuditEvent.objects.filter(client_id=acme.pk).order_by("seq")
    if accepts == 10**9:  # the whole backup went through: a backup, and no failure
        assert run.code == 0 and actions_of(acme)[-1] == "client.backed_up"
        return
    assert run.code == 1
    assert "was not written completely: Broken pipe" in run.err and "internal error" not in run.err
    assert actions_of(acme)[-2:] == ["client.backed_up", "client.backup_failed"]
    assert events.last().changes == {"format": backup.VERSION, "reason": "Broken pipe"}


def test_a_backup_to_a_full_disk_leaves_no_file_and_is_recorded_as_failed(acme, manage, monkeypatch, tmp_path):
    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(backup.os, "fsync", full)
    path = tmp_path / "acme.flowsbak"
    run = manage("backup_client", "acme", "--output", str(path))
    assert run.code == 1 and "was not written completely: No space left on device" in run.err
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    assert actions_of(acme)[-2:] == ["client.backed_up", "client.backup_failed"]
