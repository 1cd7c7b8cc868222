"""manage.py health_check: database reachability as each role, role attributes, RLS policies, migrations."""

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

from clients import dbroles
from config.commands import FlowsCommand, Result
from config.errors import Refused
from vault import keyring
from vault.selectors import key_ring_problems


def _probe(alias: str) -> tuple[str, int]:
    """The role the alias connects as, and how many clients it sees with no tenant set.

    Runs on the raw driver connection: the tenant alias's guard refuses ORM statements outside
    a tenant context, and this probe is exactly the tenant-less view it must fail closed on.
    """
    connection = connections[alias]
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cursor:
        cursor.execute("SELECT current_user")
        role = cursor.fetchone()[0]
        visible = -1
        if alias == settings.TENANT_DB_ALIAS:
            cursor.execute("SELECT count(*) FROM clients_client")
            visible = cursor.fetchone()[0]
    if not raw.autocommit:
        raw.rollback()
    return role, visible


class Command(FlowsCommand):
    help = (
        "Verify the databases, roles, grants, row level security, the hardening of PostgreSQL's built-ins and "
        "migrations. Exit 1 with one FAIL line per problem. A hardening step that could not be applied (no "
        "superuser at set-up) is a WARN line, and a problem with --strict, as is a backup role a complete pg_dump "
        "cannot run as; docs/tenancy.md and docs/operations.md have the DBA's runbooks."
    )
    example = "manage.py health_check --json"

    def add_arguments(self, parser):
        parser.add_argument("--strict", action="store_true", help="Count hardening warnings as problems.")

    def run(self, **options):
        checks, problems = self._connections()
        warnings: list[str] = []
        if not problems:  # the rest needs every connection
            for passed, failed in (self._row_level_security(), self._vault(), self._migrations()):
                checks += passed
                problems += failed
            warnings = dbroles.verify_hardening()
            if not warnings:
                checks.append("hardening: the tenant role has none of the built-ins it does not need")
            if backup := dbroles.backup_problems():
                warnings += backup
            else:
                checks.append(f"backup role: {settings.BACKUP_ROLE} can dump every row (BYPASSRLS, SELECT on all)")
            if warnings and options["strict"]:
                problems, warnings = problems + warnings, []
        if not self.as_json:
            for warning in warnings:
                self.stderr.write(f"WARN {warning}")
        if problems:
            if not self.as_json:
                for problem in problems:
                    self.stderr.write(f"FAIL {problem}")
            raise Refused(
                f"{len(problems)} problem(s) found",
                code="unhealthy",
                fields={"problems": problems, "warnings": warnings},
            )
        return Result({"checks": checks, "warnings": warnings}, "\n".join(f"ok   {check}" for check in checks))

    def _connections(self) -> tuple[list[str], list[str]]:
        checks, problems = [], []
        expected = {settings.CONSOLE_DB_ALIAS: settings.CONSOLE_ROLE, settings.TENANT_DB_ALIAS: settings.APP_ROLE}
        for alias in (DEFAULT_DB_ALIAS, settings.CONSOLE_DB_ALIAS, settings.TENANT_DB_ALIAS):
            try:
                role, visible = _probe(alias)
            except DatabaseError as error:
                problems.append(f"database alias {alias}: cannot connect ({str(error).strip().splitlines()[0]})")
                continue
            if alias in expected and role != expected[alias]:
                problems.append(f"database alias {alias}: connects as {role}, expected {expected[alias]}")
            elif visible > 0:
                problems.append(f"database alias {alias}: sees {visible} client(s) with no tenant set (must be 0)")
            else:
                checks.append(f"database alias {alias}: reachable as {role}")
        return checks, problems

    def _row_level_security(self) -> tuple[list[str], list[str]]:
        if problems := dbroles.verify():
            return [], problems
        return [f"row level security: {len(dbroles.tenant_models())} tenant tables verified"], []

    def _vault(self) -> tuple[list[str], list[str]]:
        if problems := key_ring_problems():
            return [], problems
        primary = keyring.load().primary.id
        return [f"vault: key ring with primary {primary}; every master key in use is in it and unwraps"], []

    def _migrations(self) -> tuple[list[str], list[str]]:
        executor = MigrationExecutor(connections[settings.CONSOLE_DB_ALIAS])
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if not pending:
            return ["migrations: all applied"], []
        names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in pending[:5])
        return [], [f"{len(pending)} migration(s) not applied: {names}"]
