"""Ratchets: every tenant table is under RLS with the exact policy shape; a new table that forgets fails."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections

from clients import dbroles
from clients.constraints import TenantForeignKey
from clients.models import Client

pytestmark = pytest.mark.usefixtures("committed")


def owner_sql(*statements: str) -> None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def test_the_database_matches_the_declared_roles_grants_and_policies():
    assert dbroles.verify() == []


def test_every_model_holding_a_client_declares_tenant_key():
    for model in apps.get_models():
        holds_client = any(
            getattr(field, "related_model", None) is Client or field.name == "client_id" for field in model._meta.fields
        )
        if holds_client:
            assert getattr(model, "tenant_key", None), f"{model._meta.label} holds a client but is not under RLS"


def test_every_unique_constraint_on_a_tenant_table_includes_the_client():
    for model in dbroles.tenant_models():
        for constraint in model._meta.constraints:
            fields = getattr(constraint, "fields", ())
            if fields and model.tenant_key != "id":
                assert {"client", "client_id"} & set(fields), f"{model._meta.label}: {constraint.name}"


# Field-level uniques on tenant tables that are safe across clients, each with its reason.
GLOBALLY_UNIQUE_FIELDS = {
    ("clients.Client", "code"),  # the tenant table itself: its rows are the clients
    ("clients.Client", "domain"),
    ("clients.ApiKey", "prefix"),  # random, never chosen by input: no cross-client oracle; found before the tenant
    ("invitations.Invitation", "code"),  # random support code, server-chosen; staff look it up across clients
}


def test_field_level_uniques_on_tenant_tables_are_the_reviewed_ones():
    for model in dbroles.tenant_models():
        for field in model._meta.concrete_fields:
            if field.unique and not field.primary_key:
                assert (model._meta.label, field.name) in GLOBALLY_UNIQUE_FIELDS, f"{model._meta.label}.{field.name}"


def test_every_foreign_key_between_tenant_tables_is_composite():
    tenant_models = set(dbroles.tenant_models())
    for model in tenant_models:
        composite = {c.field for c in model._meta.constraints if isinstance(c, TenantForeignKey)}
        for field in model._meta.concrete_fields:
            target = getattr(field, "related_model", None)
            if field.is_relation and target in tenant_models and target is not Client:
                label = f"{model._meta.label}.{field.name}"
                assert not field.db_constraint, f"{label}: a plain foreign key ignores RLS; use db_constraint=False"
                assert field.name in composite, f"{label}: declare TenantForeignKey(field={field.name!r}, ...)"


def test_a_missing_composite_foreign_key_is_reported():
    owner_sql("ALTER TABLE clients_apikey DROP CONSTRAINT apikey_application_same_client")
    try:
        assert (
            "table clients_apikey: composite foreign key apikey_application_same_client (client_id, application_id)"
            " is missing" in dbroles.verify()
        )
    finally:
        owner_sql(
            "ALTER TABLE clients_apikey ADD CONSTRAINT apikey_application_same_client FOREIGN KEY"
            " (client_id, application_id) REFERENCES clients_application (client_id, id) ON DELETE RESTRICT"
        )
    assert dbroles.verify() == []


def test_a_new_table_with_a_client_id_and_no_rls_is_reported():
    owner_sql("CREATE TABLE forgetful (id uuid PRIMARY KEY, client_id uuid NOT NULL)")
    try:
        assert "table forgetful has a client_id column but its model does not declare tenant_key" in dbroles.verify()
    finally:
        owner_sql("DROP TABLE forgetful")


def test_a_table_granted_to_the_app_role_outside_the_declarations_is_reported():
    owner_sql("CREATE TABLE extra (id int)", "GRANT SELECT ON extra TO flows_app")
    try:
        assert "role flows_app has SELECT on extra, which is not declared" in dbroles.verify()
    finally:
        owner_sql("DROP TABLE extra")


@pytest.mark.parametrize(
    ("sabotage", "expected"),
    [
        ("ALTER TABLE clients_application NO FORCE ROW LEVEL SECURITY", "row level security is not forced"),
        ("ALTER TABLE clients_application DISABLE ROW LEVEL SECURITY", "row level security is not enabled"),
        (
            "ALTER POLICY tenant_isolation ON clients_application USING (client_id = "
            "(SELECT nullif(current_setting('app.client_id', true), '')::uuid)"
            " OR current_setting('app.bypass', true) = 'on')",
            "does not have the exact tenant shape",
        ),
        (
            "CREATE POLICY extra ON clients_application FOR SELECT TO flows_app USING (true)",
            "expected exactly one policy for flows_app, found 2",
        ),
        ("GRANT TRUNCATE ON clients_client TO flows_app", "has TRUNCATE on clients_client"),
        ("GRANT REFERENCES ON clients_client TO flows_app", "has REFERENCES on clients_client"),
    ],
)
def test_each_weakening_is_reported_and_migrate_repairs_it(sabotage, expected):
    owner_sql(sabotage)
    assert any(expected in problem for problem in dbroles.verify()), dbroles.verify()
    if "CREATE POLICY extra" in sabotage:
        owner_sql("DROP POLICY extra ON clients_application")  # apply() reports foreign policies, never drops them
    dbroles.apply()
    assert dbroles.verify() == []


def test_the_system_check_reports_rls_problems():
    owner_sql("ALTER TABLE clients_client NO FORCE ROW LEVEL SECURITY")
    try:
        with pytest.raises(Exception, match=r"clients\.E001.*not forced"):
            call_command("check", databases=["console"])
    finally:
        dbroles.apply()


def test_applying_twice_is_harmless():
    dbroles.apply()
    dbroles.apply()
    assert dbroles.verify() == []


def test_an_append_only_table_whose_trigger_is_disabled_is_reported():
    assert dbroles.APPEND_ONLY_TABLES == ("audit_auditevent", "audit_checkpoint", "vault_secretaccess")
    owner_sql("ALTER TABLE vault_secretaccess DISABLE TRIGGER secretaccess_no_truncate")
    try:
        assert dbroles.verify() == [
            "table vault_secretaccess: no enabled trigger refuses TRUNCATE (it must be append-only)"
        ]
    finally:
        owner_sql("ALTER TABLE vault_secretaccess ENABLE TRIGGER secretaccess_no_truncate")
    assert dbroles.verify() == []
