"""Database roles, grants and Row Level Security policies: declared here, applied after every `migrate`.

This module is the one place a DBA reads to know who may do what. `apply()` converges the
database to these declarations (idempotent; it runs on every `migrate` as the owner), and
`verify()` reports every difference that matters for isolation (used by the `clients.E001`
system check, `health_check` and the invariant tests).
"""

from __future__ import annotations

import logging
import re

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from psycopg import sql

from clients.constraints import TenantForeignKey

log = logging.getLogger(__name__)

DML = "SELECT, INSERT, UPDATE, DELETE"

# Staff side. No DELETE on clients (they are deactivated or erased, never deleted) and only
# INSERT + SELECT on the audit trail.
CONSOLE_GRANTS: dict[str, str] = {
    "clients.Tier": "SELECT",
    "clients.Client": "SELECT, INSERT, UPDATE",
    "clients.Application": DML,
    "clients.ApiKey": "SELECT, INSERT, UPDATE",  # revoked, never deleted
    "audit.AuditEvent": "SELECT, INSERT",
    "audit.ChainHead": "SELECT, INSERT, UPDATE (seq, hash)",
    "audit.Checkpoint": "SELECT, INSERT",  # audit_checkpoint appends; verify_audit --resume reads
    # The trail's distinct labels, for the changelist's search: read only, written by the events' trigger as the owner.
    "audit.SearchLabel": "SELECT",
    "clients.JobLock": "SELECT, INSERT, UPDATE (name)",  # FOR UPDATE needs an UPDATE grant
    "vault.DataKey": "SELECT, INSERT, UPDATE",  # destroyed by erasure, never deleted
    "vault.Secret": DML,
    "vault.SecretAccess": "SELECT, INSERT",  # append-only
    "vault.SigningKey": "SELECT, INSERT, UPDATE",
    "invitations.Invitation": DML,  # cleanup deletes finished ones past retention
    "auth.User": DML,
    "auth.User_groups": DML,
    "auth.User_user_permissions": DML,
    "auth.Group": DML,
    "auth.Group_permissions": DML,
    "auth.Permission": "SELECT",
    "contenttypes.ContentType": "SELECT, INSERT",
    "sessions.Session": DML,
    "admin.LogEntry": "SELECT, INSERT, DELETE",
    "django_migrations": "SELECT",  # health_check reports unapplied migrations
    "api.Usage": "SELECT",  # usage reports; the API's own role writes the counters
    # The dashboard's invitation summary: read only; the invitations' trigger writes it as the owner.
    "reports.InvitationDaily": "SELECT",
    "reports.ClientSeats": "SELECT",
    # Its platform-wide sums (no client's data; reports/migrations/0002): read only, written by the triggers.
    "reports.PlatformDaily": "SELECT",
    "reports.ClientTally": "SELECT",
    # Per-client staff grants (staff/models.py): granted and revoked by staff.services.
    "staff.ClientUserGrant": DML,
    "staff.ClientGroupGrant": DML,
    # Guardian's generic tables exist with the app; nothing writes them (Client grants use the
    # tables above), but guardian reads them for an object of any other model.
    "guardian.UserObjectPermission": "SELECT",
    "guardian.GroupObjectPermission": "SELECT",
    # Second factors (django-otp): enrolled, verified (a use moves the device's counters) and reset.
    "otp_totp.TOTPDevice": DML,
    "otp_static.StaticDevice": DML,
    "otp_static.StaticToken": DML,  # a recovery code is deleted when used
    # Sign-in throttling (django-axes): failures counted per user and IP, cleared on success or reset.
    "axes.AccessAttempt": DML,
    "axes.AccessAttemptExpiration": DML,
    "axes.AccessFailureLog": DML,
    "axes.AccessLog": DML,
}

# The Flows applications' role: tenant tables only, every row filtered by RLS; tiers are global
# read-only reference data. No TRUNCATE, REFERENCES or TRIGGER anywhere, and UPDATE only on the
# columns its work changes: a table-level UPDATE would let it rewrite whole rows of its own
# client (an accepted invitation back to pending) and take table locks that stall every client
# (LOCK TABLE needs a table-level grant).
APP_GRANTS: dict[str, str] = {
    "clients.Tier": "SELECT",
    "clients.Client": "SELECT",
    "clients.Application": "SELECT",
    # Appending to its client's chain locks and moves the chain's head row.
    "audit.AuditEvent": "SELECT, INSERT",
    "audit.ChainHead": "SELECT, INSERT, UPDATE (seq, hash)",
    # Decrypting its own data (invitee data, secrets it uses) needs its data keys; using a
    # secret counts the use and logs it.
    "vault.DataKey": "SELECT",
    "vault.Secret": "SELECT, UPDATE (usage_count, last_used_at)",
    "vault.SecretAccess": "SELECT, INSERT",
    # Redeeming: read the invitation, count the use (the lifecycle trigger guards the values).
    "invitations.Invitation": "SELECT, UPDATE (used_count, status, accepted_at, finished_at)",
    # Verifying tokens needs the public keys: these columns only, never the wrapped private key.
    "vault.SigningKey": "SELECT (id, kid, algorithm, public_key, status, publish_until, created_at)",
    # Metering: one upsert per request increments its counters (api/metering.py).
    "api.Usage": "SELECT, INSERT, UPDATE (count)",  # an error moves its count (api.metering); 429s: the definer
}
# Functions in our schema each runtime role may execute: every other one is reported. Names
# only: apply() grants EXECUTE on every overload of the name.
APP_FUNCTIONS: frozenset[str] = frozenset({"api_authenticate"})  # API key authentication (api/migrations/0002)
CONSOLE_FUNCTIONS: frozenset[str] = frozenset(
    {"invitation_issue_context"}  # issuing's lock, seats, keys in one round trip (invitations/migrations/0006)
)
# The tables the SECURITY DEFINER functions read or write. FORCE ROW LEVEL SECURITY filters the
# owner too, so without a policy the function would see no row; this policy, TO the owner alone,
# gives it back exactly what it already has (the owner may lift FORCE on its own tables at any
# time): it grants nothing new. verify() accepts it on these tables only and reports it anywhere else.
DEFINER_POLICY = "api_auth_definer"
DEFINER_TABLES = frozenset(
    {
        "clients.ApiKey", "clients.Client", "vault.DataKey", "api.Usage",  # api_authenticate (api/migrations)
        # invitation_summary, the invitations' trigger (reports/migrations/0001): the tenant role redeems, so the
        # trigger fires as it and writes as the owner; the tenant role holds no privilege on these tables.
        "reports.InvitationDaily", "reports.ClientSeats",
    }
)  # fmt: skip
# Tables the app role may read without RLS: global, identical for every client.
APP_GLOBAL_TABLES = {"clients.Tier", "vault.SigningKey"}

# Append-only by trigger: UPDATE, DELETE and TRUNCATE are refused for every role, the owner included.
APPEND_ONLY_TABLES = ("audit_auditevent", "audit_checkpoint", "vault_secretaccess")
# Other triggers that enforce rules for every role: (table, trigger name).
RULE_TRIGGERS = (
    ("invitations_invitation", "invitation_lifecycle"),
    ("audit_chainhead", "chainhead_follows_events"),
    # An event follows its chain's head and moves it; the database sets its time and wants a mac.
    ("audit_auditevent", "audit_event_links_to_head"),
    ("audit_auditevent", "audit_event_moves_head"),
    ("audit_auditevent", "audit_event_fixed_by_db"),
    # Every event's labels reach the search table (audit/migrations/0008).
    ("audit_auditevent", "audit_event_feeds_search_labels"),
    ("vault_secret", "secret_usage_forward"),
    # The dashboard's summary follows every write to the invitations (reports/migrations/0001).
    ("invitations_invitation", "invitation_summary_insert"),
    ("invitations_invitation", "invitation_summary_update"),
    ("invitations_invitation", "invitation_summary_delete"),
    # Clients per tier and status, and the seats' tier, follow every write to the clients (reports/migrations/0002).
    ("clients_client", "client_tally_insert"),
    ("clients_client", "client_tally_update"),
    ("clients_client", "client_tally_delete"),
)

APP_POLICY = "tenant_isolation"
CONSOLE_POLICY = "console_all"
# The exact policy shape (DESIGN §4): the (SELECT …) wrapper makes it an InitPlan evaluated once
# per statement; no OR/CASE bypass, no bypass flag. Unset or empty means no rows.
APP_POLICY_EXPRESSION = "{column} = (SELECT nullif(current_setting('app.client_id', true), '')::uuid)"


def tenant_models() -> list:
    """Models under Row Level Security: those declaring `tenant_key` (the column holding the client id)."""
    return [model for model in apps.get_models() if getattr(model, "tenant_key", None)]


def table_name(label: str) -> str:
    if "." not in label:
        return label
    return apps.get_model(label)._meta.db_table


def _roles() -> dict[str, str]:
    """Role name → password (may be empty: then an existing password is left as it is)."""
    databases = settings.DATABASES
    return {
        settings.CONSOLE_ROLE: databases[settings.CONSOLE_DB_ALIAS].get("PASSWORD", ""),
        settings.APP_ROLE: databases[settings.TENANT_DB_ALIAS].get("PASSWORD", ""),
        settings.BACKUP_ROLE: _backup_password(),
    }


# --- The backup role -----------------------------------------------------------------------------
#
# `pg_dump` as the owner fails on tables under FORCE ROW LEVEL SECURITY, and with
# --enable-row-security dumps them empty. Full dumps run as this role instead: LOGIN, BYPASSRLS
# (only a superuser can give it: `harden()` does, with DATABASE_SUPERUSER_URL), and exactly
# BACKUP_PRIVILEGES on every table and sequence of our schema, nothing else; its sessions are
# read-only by default. verify() reports anything more; backup_problems() what a dump would miss.
BACKUP_PRIVILEGES = "SELECT"


def _backup_password() -> str:
    if settings.DATABASE_BACKUP_URL:
        import environ  # noqa: PLC0415

        return environ.Env.db_url_config(settings.DATABASE_BACKUP_URL).get("PASSWORD", "")
    return settings.FLOWS_BACKUP_PASSWORD


def _ensure_backup_grants(cursor) -> None:
    role = sql.Identifier(settings.BACKUP_ROLE)
    cursor.execute(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {}").format(role))
    cursor.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(role))
    cursor.execute(sql.SQL("GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))


def on_post_migrate(sender, using=DEFAULT_DB_ALIAS, **kwargs):
    if sender.name == "clients" and using == DEFAULT_DB_ALIAS:
        apply(using=using)


def apply(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Create or update the runtime roles, grants and policies. Idempotent; runs as the owner."""
    connection = connections[using]
    existing = set(connection.introspection.table_names())
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for role, password in _roles().items():
            _ensure_role(cursor, role, password)
            _ensure_role_settings(cursor, role)
        roles = [sql.Identifier(role) for role in _roles()]
        role_list = sql.SQL(", ").join(roles)
        database = sql.Identifier(connection.settings_dict["NAME"])
        cursor.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
        cursor.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, role_list))
        cursor.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role_list))
        cursor.execute(sql.SQL("REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC"))
        # Functions the owner creates later start without PUBLIC's EXECUTE. Per-schema defaults
        # (`IN SCHEMA`) can only add privileges, so the revoke has to be the role's global default.
        cursor.execute(sql.SQL("ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC"))

        # Start from nothing on every table, then grant exactly what is declared.
        for table in sorted(existing):
            cursor.execute(sql.SQL("REVOKE ALL ON TABLE {} FROM PUBLIC, {}").format(sql.Identifier(table), role_list))
        for role, grants in ((settings.CONSOLE_ROLE, CONSOLE_GRANTS), (settings.APP_ROLE, APP_GRANTS)):
            for label, privileges in grants.items():
                table = table_name(label)
                if table in existing:
                    cursor.execute(
                        sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                            sql.SQL(privileges), sql.Identifier(table), sql.Identifier(role)
                        )
                    )
        _ensure_backup_grants(cursor)
        _ensure_function_grants(cursor)
        definer_tables = {table_name(label) for label in DEFINER_TABLES}
        for model in tenant_models():
            if model._meta.db_table in existing:
                _ensure_policies(cursor, model, definer=model._meta.db_table in definer_tables)
    log.info("database roles, grants and row level security policies applied")
    if settings.DATABASE_SUPERUSER_URL:
        for line in harden(settings.DATABASE_SUPERUSER_URL, database=connection.settings_dict["NAME"]):
            log.info("hardening: %s", line)


# Role-level settings, exactly these (a role may `ALTER ROLE … SET` itself: the set-up resets what
# else it finds, and verify() reports it). Staff-side work fails with a clear error instead of
# waiting without end on a row the tenant role holds (its own client's, through a foreign-key
# check); an idle transaction of the tenant role does not hold its locks for ever.
ROLE_SETTINGS: dict[str, dict[str, str]] = {
    "console": {"lock_timeout": "15s"},
    "app": {"idle_in_transaction_session_timeout": "60s"},
    # A dump only reads: a session of the backup role cannot write even where a grant slipped through.
    "backup": {"default_transaction_read_only": "on"},
}


def _role_settings() -> dict[str, dict[str, str]]:
    return {
        settings.CONSOLE_ROLE: ROLE_SETTINGS["console"],
        settings.APP_ROLE: ROLE_SETTINGS["app"],
        settings.BACKUP_ROLE: ROLE_SETTINGS["backup"],
    }


def _ensure_role_settings(cursor, role: str) -> None:
    cursor.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(sql.Identifier(role)))
    for name, value in _role_settings()[role].items():
        cursor.execute(
            sql.SQL("ALTER ROLE {} SET {} = {}").format(sql.Identifier(role), sql.Identifier(name), sql.Literal(value))
        )


def _ensure_role(cursor, role: str, password: str) -> None:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    if cursor.fetchone():
        # Only a superuser may change SUPERUSER, REPLICATION or BYPASSRLS; the owner (CREATEROLE)
        # could never have granted them, and verify() reports them if someone else did.
        statement = sql.SQL("ALTER ROLE {} LOGIN NOCREATEDB NOCREATEROLE NOINHERIT")
    else:
        statement = sql.SQL(
            "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
        )
    statement = statement.format(sql.Identifier(role))
    if password:
        statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(password))
    cursor.execute(statement)


def _ensure_function_grants(cursor) -> None:
    """EXECUTE on our functions exactly as APP_FUNCTIONS/CONSOLE_FUNCTIONS declare: revoked, then granted."""
    cursor.execute(
        "SELECT p.oid::regprocedure::text, p.proname FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace"
    )
    functions = cursor.fetchall()
    for role, declared in ((settings.APP_ROLE, APP_FUNCTIONS), (settings.CONSOLE_ROLE, CONSOLE_FUNCTIONS)):
        for signature, name in functions:
            verb = "GRANT EXECUTE ON FUNCTION {} TO {}" if name in declared else "REVOKE EXECUTE ON FUNCTION {} FROM {}"
            cursor.execute(sql.SQL(verb).format(sql.SQL(signature), sql.Identifier(role)))


def _ensure_policies(cursor, model, *, definer: bool) -> None:
    table = sql.Identifier(model._meta.db_table)
    expression = sql.SQL(APP_POLICY_EXPRESSION.format(column=model.tenant_key))
    cursor.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))
    cursor.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(table))
    policies = [
        (APP_POLICY, settings.APP_ROLE, expression),
        (CONSOLE_POLICY, settings.CONSOLE_ROLE, sql.SQL("true")),
    ]
    if definer:
        cursor.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)", [model._meta.db_table]
        )
        policies.append((DEFINER_POLICY, cursor.fetchone()[0], sql.SQL("true")))
    else:
        cursor.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(DEFINER_POLICY), table))
    for name, role, condition in policies:
        cursor.execute(
            "SELECT 1 FROM pg_policies WHERE schemaname = 'public' AND tablename = %s AND policyname = %s",
            [model._meta.db_table, name],
        )
        if cursor.fetchone():
            statement = "ALTER POLICY {name} ON {table} TO {role} USING ({condition}) WITH CHECK ({condition})"
        else:
            statement = (
                "CREATE POLICY {name} ON {table} AS PERMISSIVE FOR ALL TO {role} "
                "USING ({condition}) WITH CHECK ({condition})"
            )
        cursor.execute(
            sql.SQL(statement).format(
                name=sql.Identifier(name), table=table, role=sql.Identifier(role), condition=condition
            )
        )


# --- Hardening of the built-ins (needs a superuser) ---------------------------------------------
#
# PostgreSQL grants some built-in functions to PUBLIC. Our runtime roles need none of them, and
# each gives the tenant role a way around RLS or a way to hurt other clients:
HARDENED_FUNCTIONS = {
    # objects outside RLS, which then break the owner's `pg_dump --enable-row-security`
    "large objects": r"^lo_|^lo(read|write)$",
    # lock keys any role can compute: a cross-tenant denial of service
    "advisory locks": r"^pg_(try_)?advisory_",
    # cancelling or terminating other sessions of the same role, i.e. other clients' requests
    "signalling backends": r"^pg_(cancel|terminate)_backend$",
    # other sessions' query text, with other clients' ids and values in it
    "reading other sessions": r"^pg_stat_get_(activity|backend_.*)$",
}
# Views over those functions: revoked too, so a reader gets a clear refusal, not empty columns.
HARDENED_VIEWS = ("pg_stat_activity", "pg_locks")
# What the owner and the console role use of the revoked built-ins, granted back: nothing today
# (the single-run lock of scheduled jobs is a row lock, see clients/locks.py).
HARDENED_GRANT_BACK: dict[str, tuple[str, ...]] = {}
# Other databases PUBLIC may connect to are closed, except these for the owner (Django creates
# and drops the test database from `postgres`).
OWNER_MAINTENANCE_DATABASES = ("postgres",)


def _hardened_functions(cursor) -> list[tuple[str, str]]:
    """(what, signature) of every pg_catalog function in HARDENED_FUNCTIONS."""
    cursor.execute(
        "SELECT p.oid::regprocedure::text, p.proname FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace"
    )
    found = []
    for signature, name in cursor.fetchall():
        for what, pattern in HARDENED_FUNCTIONS.items():
            if re.search(pattern, name):
                found.append((what, signature))
    return sorted(found)


def harden(superuser_url: str, *, database: str) -> list[str]:
    """As a superuser: revoke from PUBLIC the built-ins no runtime role needs, in `database`, and
    CONNECT/TEMP on the cluster's other databases. Idempotent; returns what it did, one line each."""
    import environ  # noqa: PLC0415 - only the release job's migrate gets here
    import psycopg  # noqa: PLC0415

    config = environ.Env.db_url_config(superuser_url)
    owner = connections[DEFAULT_DB_ALIAS].settings_dict["USER"]
    done = []
    with psycopg.connect(
        host=config["HOST"], port=config["PORT"] or None, user=config["USER"], password=config["PASSWORD"],
        dbname=database, autocommit=False,
    ) as connection, connection.cursor() as cursor:  # fmt: skip
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not cursor.fetchone()[0]:
            raise PermissionError("DATABASE_SUPERUSER_URL does not connect as a superuser")
        for _what, signature in _hardened_functions(cursor):
            cursor.execute(sql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM PUBLIC").format(sql.SQL(signature)))
            for grantee in HARDENED_GRANT_BACK.get(signature, ()):
                cursor.execute(
                    sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(signature), sql.Identifier(grantee))
                )
        done.append(f"revoked from PUBLIC: {', '.join(HARDENED_FUNCTIONS)}")
        for view in HARDENED_VIEWS:
            cursor.execute(sql.SQL("REVOKE SELECT ON pg_catalog.{} FROM PUBLIC").format(sql.Identifier(view)))
        done.append(f"revoked from PUBLIC: SELECT on {', '.join(HARDENED_VIEWS)}")
        # Only a superuser may give BYPASSRLS: the backup role's dumps see every client's rows.
        cursor.execute(sql.SQL("ALTER ROLE {} BYPASSRLS").format(sql.Identifier(settings.BACKUP_ROLE)))
        done.append(f"role {settings.BACKUP_ROLE}: BYPASSRLS (complete dumps)")
        cursor.execute(
            "SELECT datname FROM pg_database WHERE datname <> current_database() AND datallowconn"
            " AND (datname IN ('postgres', 'template1') OR datdba = (SELECT oid FROM pg_roles WHERE rolname = %s))",
            [owner],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
            if name in OWNER_MAINTENANCE_DATABASES:
                cursor.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(name), sql.Identifier(owner))
                )
            done.append(f"database {name}: CONNECT and TEMPORARY revoked from PUBLIC")
        connection.commit()
    return done


def verify_hardening(*, using: str = settings.CONSOLE_DB_ALIAS) -> list[str]:
    """Each hardening step the tenant role is still exposed by, one line each (a DBA's to-do; docs/tenancy.md)."""
    role = settings.APP_ROLE
    with connections[using].cursor() as cursor:
        exposed: dict[str, int] = {}
        for what, signature in _hardened_functions(cursor):
            cursor.execute("SELECT has_function_privilege(%s, %s::regprocedure, 'EXECUTE')", [role, signature])
            if cursor.fetchone()[0]:
                exposed[what] = exposed.get(what, 0) + 1
        problems = [
            f"role {role} may execute {count} built-in function(s) for {what} (REVOKE EXECUTE … FROM PUBLIC)"
            for what, count in exposed.items()
        ]
        for view in HARDENED_VIEWS:
            cursor.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", [role, f"pg_catalog.{view}"])
            if cursor.fetchone()[0]:
                problems.append(f"role {role} may read the view pg_catalog.{view} (revoke SELECT from PUBLIC)")
        # Other databases: what PUBLIC may do there (an explicit grant to a role is a DBA's decision).
        cursor.execute(
            "SELECT d.datname, acl.privilege_type FROM pg_database d,"
            " aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) acl"
            " WHERE d.datallowconn AND d.datname <> current_database() AND acl.grantee = 0"
            " AND acl.privilege_type IN ('CONNECT', 'TEMPORARY') ORDER BY 1, 2"
        )
        problems += [
            f"PUBLIC, and so role {role}, has {privilege} on database {name}"
            f" (revoke it from PUBLIC, or refuse {role} there in pg_hba.conf)"
            for name, privilege in cursor.fetchall()
        ]
        cursor.execute("SELECT has_database_privilege(%s, current_database(), 'TEMPORARY')", [role])
        if cursor.fetchone()[0]:
            problems.append(f"role {role} may create temporary tables in this database")
    return problems


# --- Verification --------------------------------------------------------------------------------


def normalise_expression(text: str | None) -> str:
    """Compare policy expressions as PostgreSQL prints them, ignoring casts, quoting, case and layout."""
    text = (text or "").lower()
    text = re.sub(r"::(text|uuid)", "", text)
    text = re.sub(r'\s+as\s+"?\w+"?', "", text)
    return re.sub(r"[\s()\"]", "", text)


def expected_app_expression(model) -> str:
    return normalise_expression(APP_POLICY_EXPRESSION.format(column=model.tenant_key))


def verify(*, using: str = settings.CONSOLE_DB_ALIAS) -> list[str]:
    """Every isolation problem in the database, one precise line each; empty when all is well."""
    with connections[using].cursor() as cursor:
        return [
            *_verify_roles(cursor),
            *_verify_role_settings(cursor),
            *_verify_privileges(cursor),
            *_verify_backup_role(cursor),
            *_verify_functions(cursor),
            *_verify_rule_triggers(cursor),
            *_verify_tenant_coverage(cursor),
            *_verify_append_only(cursor),
            *(
                problem
                for table, model in sorted(_tenant_tables().items())
                for problem in _verify_table(cursor, table, model, settings.APP_ROLE, settings.CONSOLE_ROLE)
            ),
        ]


def _tenant_tables() -> dict:
    return {model._meta.db_table: model for model in tenant_models()}


def _verify_role_settings(cursor) -> list[str]:
    """Each runtime role's own settings (`ALTER ROLE … SET`, any database) are exactly the declared ones."""
    cursor.execute(
        "SELECT r.rolname, s.setdatabase, s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
        " WHERE r.rolname = ANY(%s)",
        [list(_role_settings())],
    )
    found: dict[str, dict[str, str]] = {role: {} for role in _role_settings()}
    problems = []
    for role, database, config in cursor.fetchall():
        for entry in config or []:
            name, _, value = entry.partition("=")
            if database:
                problems.append(f"role {role} has a per-database setting {name} (run migrate)")
            found[role][name] = value
    cursor.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [list(_role_settings())])
    existing = {row[0] for row in cursor.fetchall()}
    for role, expected in _role_settings().items():
        if role not in existing:
            continue  # a missing role is reported by _verify_roles, or for the backup role by backup_problems()
        if found[role] != expected:
            problems.append(f"role {role} has settings {found[role]}, expected {expected} (run migrate)")
    return problems


def _verify_roles(cursor) -> list[str]:
    app_role, console_role = settings.APP_ROLE, settings.CONSOLE_ROLE
    cursor.execute(
        "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit "
        "FROM pg_roles WHERE rolname = ANY(%s)",
        [[app_role, console_role]],
    )
    found = {row[0]: row[1:] for row in cursor.fetchall()}
    problems = []
    for role in (app_role, console_role):
        if role not in found:
            problems.append(f"role {role} does not exist (run migrate)")
            continue
        flags = dict(zip(("SUPERUSER", "BYPASSRLS", "CREATEROLE", "CREATEDB", "INHERIT"), found[role], strict=True))
        problems += [f"role {role} has {flag}" for flag, held in flags.items() if held and flag != "INHERIT"]
        if role == app_role and flags["INHERIT"]:
            problems.append(f"role {role} has INHERIT (must be NOINHERIT)")
    cursor.execute(
        "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = %s)", [app_role]
    )
    if owned := cursor.fetchone()[0]:
        problems.append(f"role {app_role} owns {owned} relation(s)")
    return problems


TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE")


def parse_privileges(declared: str) -> tuple[set[str], dict[str, set[str]]]:
    """'SELECT, UPDATE (seq, hash)' → ({'SELECT'}, {'UPDATE': {'seq', 'hash'}})."""
    table: set[str] = set()
    columns: dict[str, set[str]] = {}
    for match in re.finditer(r"([A-Z]+)\s*(?:\(([^)]*)\))?", declared):
        privilege, column_list = match[1], match[2]
        if column_list is None:
            table.add(privilege)
        else:
            columns[privilege] = {name.strip() for name in column_list.split(",")}
    return table, columns


def _actual_privileges(cursor, role: str) -> tuple[dict[str, set[str]], dict[str, dict[str, set[str]]]]:
    """The role's table-level privileges per table, and its column-only privileges per table and privilege."""
    checks = ", ".join(f"has_table_privilege(%(role)s, c.oid, '{p}')" for p in TABLE_PRIVILEGES)
    cursor.execute(
        f"SELECT c.relname, {checks} FROM pg_class c "  # noqa: S608 - privilege names are constants
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')",
        {"role": role},
    )
    tables = {
        row[0]: {privilege for privilege, held in zip(TABLE_PRIVILEGES, row[1:], strict=True) if held}
        for row in cursor.fetchall()
    }
    checks = ", ".join(f"has_column_privilege(%(role)s, c.oid, a.attnum, '{p}')" for p in COLUMN_PRIVILEGES)
    cursor.execute(
        f"SELECT c.relname, a.attname, {checks} FROM pg_class c "  # noqa: S608 - privilege names are constants
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')",
        {"role": role},
    )
    columns: dict[str, dict[str, set[str]]] = {}
    for table, column, *held in cursor.fetchall():
        for privilege, has in zip(COLUMN_PRIVILEGES, held, strict=True):
            if has and privilege not in tables.get(table, set()):
                columns.setdefault(table, {}).setdefault(privilege, set()).add(column)
    return tables, columns


def _verify_privileges(cursor) -> list[str]:
    """Each runtime role holds exactly its declared privileges: no more (a grant by hand, PUBLIC), no fewer."""
    problems = []
    for role, grants in ((settings.APP_ROLE, APP_GRANTS), (settings.CONSOLE_ROLE, CONSOLE_GRANTS)):
        declared = {table_name(label): parse_privileges(privileges) for label, privileges in grants.items()}
        tables, columns = _actual_privileges(cursor, role)
        for table in sorted(tables.keys() | columns.keys()):
            want_table, want_columns = declared.get(table, (set(), {}))
            for privilege in sorted(tables.get(table, set()) - want_table):
                problems.append(f"role {role} has {privilege} on {table}, which is not declared")
            for privilege in sorted(want_table - tables.get(table, set())):
                problems.append(f"role {role} lacks {privilege} on {table} (run migrate)")
            held_columns = columns.get(table, {})
            for privilege in sorted(held_columns.keys() | want_columns.keys()):
                extra = held_columns.get(privilege, set()) - want_columns.get(privilege, set())
                missing = want_columns.get(privilege, set()) - held_columns.get(privilege, set())
                if extra:
                    problems.append(
                        f"role {role} has {privilege} on {table} ({', '.join(sorted(extra))}), not declared"
                    )
                if missing:
                    problems.append(f"role {role} lacks {privilege} on {table} ({', '.join(sorted(missing))})")
    return problems


def _backup_privileges(cursor) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, set[str]]]:
    """The backup role's table privileges, column-only privileges and sequence privileges, per relation."""
    tables, columns = _actual_privileges(cursor, settings.BACKUP_ROLE)
    cursor.execute(
        "SELECT c.relname, has_sequence_privilege(%(role)s, c.oid, 'SELECT'), has_sequence_privilege(%(role)s, c.oid, "
        "'USAGE'), has_sequence_privilege(%(role)s, c.oid, 'UPDATE') FROM pg_class c "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'S'",
        {"role": settings.BACKUP_ROLE},
    )
    sequences = {
        name: {p for p, held in zip(("SELECT", "USAGE", "UPDATE"), flags, strict=True) if held}
        for name, *flags in cursor.fetchall()
    }
    return tables, {table: set(held) for table, held in columns.items()}, sequences


def _backup_role_attributes(cursor) -> dict[str, bool] | None:
    cursor.execute(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication, rolcanlogin"
        " FROM pg_roles WHERE rolname = %s",
        [settings.BACKUP_ROLE],
    )
    row = cursor.fetchone()
    names = ("SUPERUSER", "BYPASSRLS", "CREATEROLE", "CREATEDB", "REPLICATION", "LOGIN")
    return None if row is None else dict(zip(names, row, strict=True))


def _verify_backup_role(cursor) -> list[str]:
    """The backup role holds nothing beyond SELECT on our tables and sequences, and no attribute beyond BYPASSRLS."""
    role = settings.BACKUP_ROLE
    attributes = _backup_role_attributes(cursor)
    if attributes is None:
        return []  # backup_problems() warns: dumps would be incomplete, nothing is exposed
    problems = [
        f"role {role} has {flag}" for flag in ("SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION") if attributes[flag]
    ]
    tables, columns, sequences = _backup_privileges(cursor)
    allowed = {BACKUP_PRIVILEGES}
    for table in sorted(tables):
        problems += [f"role {role} has {p} on {table}, which is not declared" for p in sorted(tables[table] - allowed)]
    for table in sorted(columns):
        extra = sorted(columns[table] - allowed)
        problems += [f"role {role} has {p} on columns of {table}, which is not declared" for p in extra]
    for sequence in sorted(sequences):
        problems += [
            f"role {role} has {p} on sequence {sequence}, which is not declared"
            for p in sorted(sequences[sequence] - allowed)
        ]
    return problems


def backup_problems(*, using: str = settings.CONSOLE_DB_ALIAS) -> list[str]:
    """Why a `pg_dump` as the backup role would be incomplete, one line each (health_check's warnings)."""
    role = settings.BACKUP_ROLE
    with connections[using].cursor() as cursor:
        attributes = _backup_role_attributes(cursor)
        if attributes is None:
            return [f"role {role} does not exist: no complete pg_dump is possible (run migrate; docs/operations.md)"]
        problems = []
        if not attributes["LOGIN"]:
            problems.append(f"role {role} cannot log in (run migrate)")
        if not attributes["BYPASSRLS"] and not attributes["SUPERUSER"]:
            problems.append(
                f"role {role} lacks BYPASSRLS: a pg_dump as it would hold every tenant table empty"
                f" (as a superuser: ALTER ROLE {role} BYPASSRLS)"
            )
        tables, _columns, sequences = _backup_privileges(cursor)
        unreadable = sorted(table for table, held in tables.items() if "SELECT" not in held)
        unreadable += sorted(sequence for sequence, held in sequences.items() if "SELECT" not in held)
        if unreadable:
            problems.append(
                f"role {role} lacks SELECT on {len(unreadable)} table(s) or sequence(s), a pg_dump as it fails:"
                f" {', '.join(unreadable[:5])} (run migrate)"
            )
    return problems


def _verify_functions(cursor) -> list[str]:
    """No function in our schema is executable by PUBLIC, or by a runtime role it was not granted to."""
    cursor.execute(
        "SELECT p.oid::regprocedure::text, has_function_privilege(%s, p.oid, 'EXECUTE'),"
        " has_function_privilege(%s, p.oid, 'EXECUTE'),"
        " EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) acl"
        "         WHERE acl.grantee = 0 AND acl.privilege_type = 'EXECUTE')"
        " FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace",
        [settings.APP_ROLE, settings.CONSOLE_ROLE],
    )
    granted = {settings.APP_ROLE: APP_FUNCTIONS, settings.CONSOLE_ROLE: CONSOLE_FUNCTIONS}
    executable: dict[str, set[str]] = {role: set() for role in granted}
    problems = []
    for function, app_may, console_may, public_may in cursor.fetchall():
        if public_may:
            problems.append(f"function {function} is executable by PUBLIC")
        for role, may in ((settings.APP_ROLE, app_may), (settings.CONSOLE_ROLE, console_may)):
            if may and function.split("(")[0] not in granted[role]:
                problems.append(f"role {role} may execute {function}, which is not declared")
            if may:
                executable[role].add(function.split("(")[0])
    for role, declared in granted.items():
        problems += [
            f"role {role} cannot execute {name}, which is declared (run migrate)"
            for name in sorted(declared - executable[role])
        ]
    return problems


def _verify_rule_triggers(cursor) -> list[str]:
    cursor.execute(
        "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE c.relnamespace = 'public'::regnamespace AND t.tgenabled <> 'D' AND NOT t.tgisinternal"
    )
    enabled = set(cursor.fetchall())
    return [
        f"table {table}: trigger {trigger} is missing or disabled"
        for table, trigger in RULE_TRIGGERS
        if (table, trigger) not in enabled
    ]


def _verify_append_only(cursor) -> list[str]:
    """Each append-only table has enabled triggers refusing UPDATE, DELETE and TRUNCATE."""
    # tgtype bits: 4 INSERT, 8 DELETE, 16 UPDATE, 32 TRUNCATE; tgenabled 'D' is disabled.
    cursor.execute(
        "SELECT c.relname, bit_or(t.tgtype::int) FILTER (WHERE t.tgenabled <> 'D') "
        "FROM pg_class c LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal "
        "WHERE c.relname = ANY(%s) AND c.relnamespace = 'public'::regnamespace GROUP BY c.relname",
        [list(APPEND_ONLY_TABLES)],
    )
    found = dict(cursor.fetchall())
    problems = []
    for table in APPEND_ONLY_TABLES:
        if table not in found:
            continue  # not migrated yet: the migrations check reports it
        missing = [
            name for bit, name in ((16, "UPDATE"), (8, "DELETE"), (32, "TRUNCATE")) if not (found[table] or 0) & bit
        ]
        if missing:
            problems.append(f"table {table}: no enabled trigger refuses {', '.join(missing)} (it must be append-only)")
    return problems


def _verify_tenant_coverage(cursor) -> list[str]:
    """Every table with a client_id is a tenant model, and everything granted to the app role is one."""
    tenant_tables = _tenant_tables()
    # pg_catalog, not information_schema: the latter hides tables the checking role has no privilege on.
    cursor.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'client_id' AND NOT a.attisdropped "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
    )
    problems = [
        f"table {table} has a client_id column but its model does not declare tenant_key"
        for (table,) in cursor.fetchall()
        if table not in tenant_tables
    ]
    problems += [
        f"{label} is granted to {settings.APP_ROLE} but is not a tenant model under RLS"
        for label in APP_GRANTS
        if label not in APP_GLOBAL_TABLES and table_name(label) not in tenant_tables
    ]
    return problems


def _verify_table(cursor, table: str, model, app_role: str, console_role: str) -> list[str]:
    cursor.execute(
        "SELECT relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner) FROM pg_class"
        " WHERE oid = to_regclass(%s)",
        [f"public.{table}"],
    )
    row = cursor.fetchone()
    if row is None:
        return [f"table {table} does not exist (run migrate)"]
    problems = []
    if not row[0]:
        problems.append(f"table {table}: row level security is not enabled")
    if not row[1]:
        problems.append(f"table {table}: row level security is not forced")
    cursor.execute(
        "SELECT policyname, permissive, roles::text[], cmd, qual, with_check FROM pg_policies "
        "WHERE schemaname = 'public' AND tablename = %s",
        [table],
    )
    policies = cursor.fetchall()
    app_policies = [p for p in policies if app_role in p[2] or "public" in p[2]]
    console_policies = [p for p in policies if console_role in p[2]]
    expected = expected_app_expression(model)
    if len(app_policies) != 1:
        problems.append(f"table {table}: expected exactly one policy for {app_role}, found {len(app_policies)}")
    for name, permissive, roles, cmd, qual, with_check in app_policies:
        if permissive != "PERMISSIVE" or cmd != "ALL" or roles != [app_role]:
            problems.append(f"table {table}: policy {name} must be PERMISSIVE, FOR ALL, TO {app_role} only")
        if normalise_expression(qual) != expected or normalise_expression(with_check) != expected:
            problems.append(f"table {table}: policy {name} does not have the exact tenant shape ({qual!r})")
    if len(console_policies) != 1:
        problems.append(f"table {table}: expected exactly one policy for {console_role}, found {len(console_policies)}")
    others = [p for p in policies if p not in app_policies and p not in console_policies]
    return problems + _verify_definer_policy(table, row[2], others) + _verify_tenant_links(cursor, table, model)


def _verify_definer_policy(table: str, owner: str, policies: list) -> list[str]:
    """A declared definer table has exactly the owner's `api_auth_definer` policy besides the two; others have none."""
    declared = table in {table_name(label) for label in DEFINER_TABLES}
    problems = []
    for name, permissive, roles, cmd, qual, with_check in policies:
        exact = (
            declared and name == DEFINER_POLICY and permissive == "PERMISSIVE" and cmd == "ALL" and roles == [owner]
            and normalise_expression(qual) == "true" and normalise_expression(with_check) == "true"
        )  # fmt: skip
        if not exact:
            problems.append(f"table {table}: unexpected policy {name} (TO {', '.join(roles)})")
    if declared and not any(p[0] == DEFINER_POLICY for p in policies):
        problems.append(f"table {table}: policy {DEFINER_POLICY} for the owner is missing (run migrate)")
    return problems


def _verify_tenant_links(cursor, table: str, model) -> list[str]:
    """Every declared TenantForeignKey exists as a composite foreign key on (client_id, <x>_id)."""
    problems = []
    for constraint in model._meta.constraints:
        if not isinstance(constraint, TenantForeignKey):
            continue
        column = model._meta.get_field(constraint.field).column
        cursor.execute(
            "SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_constraint c "
            "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
            "WHERE c.conrelid = to_regclass(%s) AND c.conname = %s AND c.contype = 'f'",
            [f"public.{table}", constraint.name],
        )
        if cursor.fetchone()[0] != ["client_id", column]:
            problems.append(f"table {table}: composite foreign key {constraint.name} (client_id, {column}) is missing")
    return problems
