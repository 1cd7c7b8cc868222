"""Fixtures and helpers of the audit tests: a client with a chain, and tampering as the superuser would."""

from __future__ import annotations

import pytest

from audit import keys
from audit.models import AuditEvent
from audit.services import HASHED_COLUMNS, event_hash, event_mac, hashed_fields
from clients import services
from tests.conftest import connect_as_superuser


@pytest.fixture
def acme(committed, make_client):
    """A client whose chain holds six events, and the platform chain beside it."""
    client = make_client("acme")
    services.configure_application(actor=None, client=client, app_code="onboarding")
    for name in ("Acme One", "Acme Two", "Acme Three"):
        services.update_client(actor=None, client=client, legal_name=name)
    return client


def chain(client) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(client_id=client.pk).order_by("seq"))


def as_superuser(*statements: tuple[str, list]) -> None:
    """Run statements as the superuser with the audit triggers off, as an attacker with that access would."""
    with connect_as_superuser() as connection, connection.transaction():
        connection.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        connection.execute("ALTER TABLE audit_chainhead DISABLE TRIGGER USER")
        for statement, params in statements:
            connection.execute(statement, params)
        connection.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
        connection.execute("ALTER TABLE audit_chainhead ENABLE TRIGGER USER")


def problems(run) -> list[str]:
    return [line for line in run.out.splitlines() if line]


def rewrite_chain(client, *, legacy_up_to: int = 0, key: bytes | None = None) -> list[tuple[str, list]]:
    """Statements recomputing a client's whole chain consistently: the first events unkeyed (legacy), the rest keyed."""
    statements, prev = [], "0" * 64
    for event in chain(client):
        values = {name: getattr(event, name) for name in (*HASHED_COLUMNS, "seq")}
        key_id = "" if event.seq <= legacy_up_to else event.key_id
        new_hash = event_hash(prev, hashed_fields({**values, "key_id": key_id}))
        mac = event_mac(key or keys.chain_keys().get(key_id).key, new_hash) if key_id else ""
        statements.append(
            ("UPDATE audit_auditevent SET prev_hash = %s, hash = %s, key_id = %s, mac = %s WHERE id = %s",
             [prev, new_hash, key_id, mac, event.id])
        )  # fmt: skip
        prev = new_hash
    statements.append(("UPDATE audit_chainhead SET hash = %s WHERE client_id = %s", [prev, client.pk]))
    return statements
