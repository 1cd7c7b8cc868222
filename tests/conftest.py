"""Shared fixtures. All data tests run on the real PostgreSQL test database, as the real roles."""

from __future__ import annotations

import json
from dataclasses import dataclass

import environ
import psycopg
import pytest
from django.conf import settings
from django.core.management import ManagementUtility
from django.db import DEFAULT_DB_ALIAS, connections

from clients import services
from clients.dbroles import APPEND_ONLY_TABLES
from clients.models import Client

# Reference data seeded by migrations (tiers, the staff roles) survives the committed-mode clean-up.
KEEP_TABLES = {
    "django_migrations", "django_content_type", "auth_permission", "clients_tier",
    "auth_group", "auth_group_permissions",
}  # fmt: skip


def _truncate_everything_else() -> None:
    """Empty every table but reference data, as the owner.

    The append-only tables refuse TRUNCATE even from their owner; only the owner's DDL can switch
    their triggers off, which this does inside the same transaction.
    """
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        tables = [t for t in connections[DEFAULT_DB_ALIAS].introspection.table_names(cursor) if t not in KEEP_TABLES]
        cursor.execute("BEGIN")
        for table in APPEND_ONLY_TABLES:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        for table in APPEND_ONLY_TABLES:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        cursor.execute("COMMIT")


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker, django_db_keepdb):
    """Set up the test database for all three aliases, whatever the collected tests' marks name.

    They share one database (same host, port and name) with different users, so Django creates it
    once and points the other aliases at it: RLS and grants are exercised for real.
    """
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, keepdb=django_db_keepdb, aliases=set(connections))
        names = {connections[alias].settings_dict["NAME"] for alias in connections}
        assert len(names) == 1 and names.pop().startswith("test_"), "every alias must point at the test database"
    yield
    with django_db_blocker.unblock():
        connections.close_all()
        teardown_databases(config, verbosity=0, keepdb=django_db_keepdb)


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """Database access with real commits on all three aliases: for tests where isolation itself is under test."""
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            connections.close_all()
            _truncate_everything_else()
            connections.close_all()


@pytest.fixture
def make_client():
    def make(code: str, *, tier: str = "enterprise", region: str = "EU") -> Client:
        return services.create_client(
            actor=None,
            code=code,
            legal_name=f"{code.title()} Ltd",
            domain=f"{code}.thepia.net",
            region=region,
            tier=tier,
        )

    return make


def connect_as(alias: str) -> psycopg.Connection:
    """A raw driver connection with an alias's credentials: the database as that role sees it."""
    params = connections[alias].get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=False)


def connect_as_superuser() -> psycopg.Connection:
    """The installation's superuser (DATABASE_SUPERUSER_URL) on the test database: to play a session
    no hardening restrains, or to undo hardening in a test."""
    assert settings.DATABASE_SUPERUSER_URL, "the embedded database always has a superuser: set DATABASE_SUPERUSER_URL"
    config = environ.Env.db_url_config(settings.DATABASE_SUPERUSER_URL)
    return psycopg.connect(
        host=config["HOST"], port=config["PORT"], user=config["USER"], password=config["PASSWORD"],
        dbname=connections[DEFAULT_DB_ALIAS].settings_dict["NAME"], autocommit=True,
    )  # fmt: skip


@pytest.fixture
def app_connection(committed):
    """Connected as the restricted tenant role (flows_app). Fails, never skips, when it cannot connect."""
    with connect_as(settings.TENANT_DB_ALIAS) as connection:
        user = connection.execute("SELECT current_user").fetchone()[0]
        assert user == settings.APP_ROLE
        yield connection


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict:
        return json.loads(self.out)


@pytest.fixture
def manage(committed, capsys):
    """Run `manage.py <argv>` in-process through Django's real entry point (which closes connections when done)."""

    def run(*argv: str) -> Run:
        capsys.readouterr()
        try:
            ManagementUtility(["manage.py", *argv]).execute()
            code = 0
        except SystemExit as exit_:
            code = exit_.code or 0
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
