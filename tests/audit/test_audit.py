"""The audit trail: append-only for everyone, hash-chained per client, written in the change's transaction."""

from __future__ import annotations

import itertools
import re
import uuid

import psycopg
import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from audit import keys
from audit.models import AuditEvent
from audit.services import (
    GENESIS_HASH,
    HASHED_COLUMNS,
    PLATFORM_CHAIN,
    event_hash,
    event_mac,
    hashed_fields,
    last_event,
    mask_changes,
    record,
)
from clients import services
from tests.conftest import connect_as

CHANGES = ["UPDATE audit_auditevent SET action = 'forged'", "DELETE FROM audit_auditevent", "TRUNCATE audit_auditevent"]


@pytest.mark.parametrize("statement", CHANGES)
@pytest.mark.parametrize("alias", [settings.CONSOLE_DB_ALIAS, settings.TENANT_DB_ALIAS])
def test_the_runtime_roles_cannot_change_audit_events(committed, make_client, alias, statement):
    acme = make_client("acme")
    with connect_as(alias) as connection:
        connection.execute("SELECT set_config('app.client_id', %s, true)", [str(acme.pk)])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute(statement)
    assert AuditEvent.objects.filter(action="client.created").count() == 1


@pytest.mark.parametrize("statement", CHANGES)
def test_the_trigger_refuses_changes_even_from_the_owner(committed, make_client, statement):
    make_client("acme")  # committed, so the owner's own connection sees it
    with connect_as(DEFAULT_DB_ALIAS) as owner:
        # Forced RLS hides every row from the owner; lift it inside this transaction (rolled back)
        # so that the trigger, not an empty result, is what refuses.
        owner.execute("ALTER TABLE audit_auditevent NO FORCE ROW LEVEL SECURITY")
        assert owner.execute("SELECT count(*) FROM audit_auditevent WHERE action = 'client.created'").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            owner.execute(statement)
        owner.rollback()
    assert AuditEvent.objects.filter(action="client.created").count() == 1


def test_record_needs_the_callers_transaction(committed):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        record(actor=None, action="client.created")


@pytest.mark.django_db(databases="__all__")
def test_events_are_chained_per_client(make_client):
    acme = make_client("acme")
    services.configure_application(actor=None, client=acme, app_code="onboarding")
    make_client("globex")
    chain = list(AuditEvent.objects.filter(client_id=acme.pk).order_by("seq"))
    assert [e.action for e in chain] == ["client.created", "application.created"]
    assert [e.seq for e in chain] == [1, 2]
    assert chain[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(chain))
    assert AuditEvent.objects.get(client_code="globex", action="client.created").seq == 1  # its own chain
    first = chain[0]
    values = {name: getattr(first, name) for name in (*HASHED_COLUMNS, "key_id", "seq")}
    assert first.key_id == keys.chain_keys().primary.id
    assert event_hash(first.prev_hash, hashed_fields(values)) == first.hash
    assert event_hash(first.prev_hash, hashed_fields({**values, "action": "client.deleted"})) != first.hash
    assert event_mac(keys.chain_keys().primary.key, first.hash) == first.mac
    assert event_mac(b"\0" * 32, first.hash) != first.mac


@pytest.mark.django_db(databases="__all__")
def test_a_failed_change_leaves_no_event_and_a_failed_event_no_change(make_client, monkeypatch):
    acme = make_client("acme")
    before = AuditEvent.objects.count()

    def broken_record(**kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(services, "record", broken_record)
    with pytest.raises(RuntimeError):
        services.update_client(actor=None, client=acme, legal_name="Changed")
    acme.refresh_from_db()
    assert acme.legal_name == "Acme Ltd"
    assert AuditEvent.objects.count() == before


def test_sensitive_values_are_masked_at_any_depth():
    masked = mask_changes(
        {"password": "x", "config": {"api_key": "k", "locale": "en"}, "name": {"old": "a", "new": "b"}}
    )
    assert masked == {"password": "***", "config": {"api_key": "***", "locale": "en"}, "name": {"old": "a", "new": "b"}}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # Issue 8.10: names that merely contain a sensitive word are data, not secrets.
        ({"secret_type": {"old": "api_key", "new": "oauth"}}, {"secret_type": {"old": "api_key", "new": "oauth"}}),
        ({"secrets": 120, "to_version": 2}, {"secrets": 120, "to_version": 2}),
        ({"token_hash": "ab12", "value": "replaced"}, {"token_hash": "ab12", "value": "replaced"}),
        # Names that say what the value is, in any spelling.
        (
            {"clientSecret": "s", "private-key": "k", "DB_PASSWORD": "p", "access_token": "t"},
            {"clientSecret": "***", "private-key": "***", "DB_PASSWORD": "***", "access_token": "***"},
        ),
        # Values that are credentials whatever their key, in lists too.
        (
            {"note": "flk_0123456789ab_" + "x" * 43, "list": ["ok", "Bearer abc"]},
            {"note": "***", "list": ["ok", "***"]},
        ),
        ({"pasted": "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"}, {"pasted": "***"}),
        ({"pem": "-----BEGIN PRIVATE KEY-----\nMC4CAQ\n-----END PRIVATE KEY-----"}, {"pem": "***"}),
        # Found by the review: credentials inside a URL, and single-word names.
        (
            {"webhook_url": "https://alice:S3cret@hooks.example.com/x?token=abc&page=2"},
            {"webhook_url": "https://alice:***@hooks.example.com/x?token=***&page=2"},
        ),
        ({"apikey": "a", "secret_value": "b"}, {"apikey": "***", "secret_value": "***"}),
    ],
)
def test_the_mask_goes_by_what_a_value_is_not_by_a_substring_of_its_name(changes, expected):
    assert mask_changes(changes) == expected


@pytest.mark.django_db(databases="__all__")
def test_rewrap_and_secret_events_keep_their_counts_and_types(make_client):
    from vault import services as vault_services

    acme = make_client("acme")
    secret = vault_services.set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="v")
    vault_services.set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="w",
                              description="bot")  # fmt: skip
    vault_services.create_data_key(actor=None, client=acme)
    vault_services.rewrap(actor=None)
    created = AuditEvent.objects.get(action="secret.created", target_id=str(secret.pk))
    assert created.changes["secret_type"] == {"old": None, "new": "api_key"} and created.changes["value"] == "set"
    assert AuditEvent.objects.get(action="secret.rewrapped").changes["secrets"] == 1


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("client_id", [str(uuid.uuid4()), None], ids=["client chain", "platform chain"])
def test_finding_the_chain_head_is_an_index_lookup_not_a_scan_of_the_trail(client_id):
    """Every write reads its chain's head; at millions of events a scan would cost every write ~0.2 s."""
    alias = settings.CONSOLE_DB_ALIAS
    with transaction.atomic(using=alias):
        with connections[alias].cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # the test table is small: ask what an index can do
        plan = last_event(alias, client_id, client_id or PLATFORM_CHAIN)[:1].explain()
    index_conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    # The index is entered on client_id (an indexed range), not walked whole with a filter.
    assert "Seq Scan" not in plan and index_conditions and "client_id" in index_conditions[0], plan


def test_every_action_the_code_records_is_in_the_vocabulary():
    """Ratchet: the admin's action filter offers KNOWN_ACTIONS; an action missing there cannot be filtered on."""
    from pathlib import Path

    from audit.models import KNOWN_ACTIONS

    root = Path(settings.BASE_DIR)
    recorded = set()
    for app in ("clients", "vault", "invitations", "audit", "config"):
        for path in (root / app).rglob("*.py"):
            text = path.read_text()
            recorded |= set(re.findall(r'action="([a-z_]+\.[a-z_]+)"', text))
            recorded |= set(re.findall(r'"(staff\.[a-z_]+)"', text))
    assert recorded and recorded <= set(KNOWN_ACTIONS), sorted(recorded - set(KNOWN_ACTIONS))
