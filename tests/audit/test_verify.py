"""verify_audit: a trail tampered with as the superuser (triggers off) or the console role is named, event by event."""

from __future__ import annotations

import re
import secrets

import psycopg
import pytest
from django.conf import settings

from audit import keys
from audit.models import AuditEvent
from audit.services import HASHED_COLUMNS, event_hash, hashed_fields
from clients import dbroles, services
from tests.audit.conftest import as_superuser, chain, problems, rewrite_chain
from tests.conftest import connect_as, connect_as_superuser

FIELDS = (
    "id, occurred_at, client_id, client_code, actor_type, actor_id, actor_label, action, target_type, target_id,"
    " target_label, changes, ip, user_agent, request_id, chain, seq, prev_hash, hash, key_id, mac"
)


def test_an_intact_trail_exits_0(acme, manage):
    run = manage("verify_audit")
    assert run.code == 0, run.out + run.err
    assert "Intact:" in run.out and "legacy" not in run.out
    summary = manage("verify_audit", "--client", "acme", "--json").json
    assert summary == {"ok": True, "chains": 1, "events": 5, "legacy_unkeyed": 0, "checkpoints": 0}
    fourth = chain(acme)[3]
    since = manage("verify_audit", "--client", acme.code, "--since", fourth.occurred_at.isoformat(), "--json").json
    assert since["events"] == 2  # the walk starts at the first event from then on, taking its link as given
    assert manage("verify_audit", "--since", "2999-01-01", "--json").json["events"] == 0


def test_an_edited_event_is_named(acme, manage):
    target = chain(acme)[2]
    as_superuser(("UPDATE audit_auditevent SET actor_label = 'someone else' WHERE id = %s", [target.id]))
    run = manage("verify_audit")
    assert run.code == 1
    assert problems(run) == [f"edited: event {target.id} (chain {acme.pk}, seq 3): its fields no longer match its hash"]
    assert "1 edited" in run.err


def test_a_deleted_event_is_named_by_the_gap_it_leaves(acme, manage):
    events = chain(acme)
    as_superuser(("DELETE FROM audit_auditevent WHERE id = %s", [events[2].id]))
    run = manage("verify_audit", "--client", "acme")
    assert run.code == 1
    assert problems(run) == [f"deleted: event {events[3].id} (chain {acme.pk}, seq 4): seq 3 missing before it"]


def test_events_deleted_from_the_end_are_caught_by_the_head(acme, manage):
    last = chain(acme)[-1]
    as_superuser(("DELETE FROM audit_auditevent WHERE id = %s", [last.id]))
    run = manage("verify_audit", "--client", "acme")
    assert run.code == 1
    assert problems(run) == [f"deleted: chain {acme.pk}: the chain head names seq 5, its last event is seq 4"]


def test_an_inserted_event_is_named(acme, manage):
    """The attacker renumbers the later events, slips one in and links it, then moves the head."""
    events = chain(acme)
    before = events[2]
    values = {name: getattr(before, name) for name in (*HASHED_COLUMNS, "key_id", "seq")}
    values["action"] = "secret.revealed"
    forged_hash = event_hash(before.hash, hashed_fields(values))
    as_superuser(
        ("UPDATE audit_auditevent SET seq = seq + 1000 WHERE client_id = %s AND seq > 3", [acme.pk]),
        ("UPDATE audit_auditevent SET seq = seq - 999 WHERE client_id = %s AND seq > 1000", [acme.pk]),
        (
            f"INSERT INTO audit_auditevent ({FIELDS.replace('id, ', '', 1)}) SELECT occurred_at, client_id,"
            " client_code, actor_type, actor_id, actor_label, 'secret.revealed', target_type, target_id, target_label,"
            " changes, ip, user_agent, request_id, chain, 4, hash, %s, key_id, %s FROM audit_auditevent WHERE id = %s",
            [forged_hash, secrets.token_hex(32), before.id],
        ),
        ("UPDATE audit_chainhead SET seq = seq + 1 WHERE client_id = %s", [acme.pk]),
    )
    inserted = AuditEvent.objects.get(client_id=acme.pk, action="secret.revealed")
    run = manage("verify_audit")
    assert run.code == 1
    assert problems(run) == [f"inserted: event {inserted.id} (chain {acme.pk}, seq 4): the next event links past it"]


def test_a_swapped_pair_is_named(acme, manage):
    events = chain(acme)
    third, fourth = events[2], events[3]
    as_superuser(
        ("UPDATE audit_auditevent SET seq = 1000 WHERE id = %s", [third.id]),
        ("UPDATE audit_auditevent SET seq = 3 WHERE id = %s", [fourth.id]),
        ("UPDATE audit_auditevent SET seq = 4 WHERE id = %s", [third.id]),
    )
    run = manage("verify_audit")
    assert run.code == 1
    assert problems(run) == [
        f"reordered: event {fourth.id} (chain {acme.pk}, seq 3): "
        f"its seq puts it before event {third.id}, its link after"
    ]


def test_an_event_the_console_role_appends_does_not_verify_and_cannot_be_backdated(acme, manage):
    """The console role's password is enough to follow the head, not to make the mac: the event is forged."""
    head = chain(acme)[-1]
    with connect_as(settings.CONSOLE_DB_ALIAS) as console:
        now = console.execute("SELECT now()").fetchone()[0]
        values = {name: getattr(head, name) for name in ("client_id", "client_code", "chain", "changes")}
        values |= {
            "occurred_at": now, "actor_type": "user", "actor_id": "1", "actor_label": "admin",
            "action": "secret.revealed", "target_type": "", "target_id": "", "target_label": "", "ip": None,
            "user_agent": "", "request_id": "", "key_id": keys.chain_keys().primary.id,
        }  # fmt: skip
        forged_hash = event_hash(head.hash, hashed_fields(values))
        console.execute(
            "INSERT INTO audit_auditevent (occurred_at, client_id, client_code, actor_type, actor_id, actor_label,"
            " action, target_type, target_id, target_label, changes, user_agent, request_id, chain, seq, prev_hash,"
            " hash, key_id, mac) VALUES (now() - interval '1 day', %s, 'acme', 'user', '1', 'admin', 'secret.revealed',"
            " '', '', '', '{}', '', '', %s, %s, %s, %s, %s, %s)",
            [acme.pk, head.chain, head.seq + 1, head.hash, forged_hash, values["key_id"], secrets.token_hex(32)],
        )
        console.commit()
    forged = AuditEvent.objects.get(client_id=acme.pk, action="secret.revealed")
    assert forged.occurred_at == now  # the database's time, not the day before the caller asked for
    services.update_client(actor=None, client=acme, legal_name="Acme After")  # the chain goes on after it
    run = manage("verify_audit")
    assert run.code == 1
    assert problems(run) == [
        f"forged: event {forged.id} (chain {acme.pk}, seq 6): its mac does not verify: not written with the audit key"
    ]


def test_the_database_refuses_an_event_without_a_key_id(acme):
    head = chain(acme)[-1]
    with connect_as(settings.CONSOLE_DB_ALIAS) as console, pytest.raises(psycopg.errors.CheckViolation):
        console.execute(
            "INSERT INTO audit_auditevent (occurred_at, client_id, client_code, actor_type, actor_id, actor_label,"
            " action, target_type, target_id, target_label, changes, user_agent, request_id, chain, seq, prev_hash,"
            " hash, key_id, mac) VALUES (now(), %s, 'acme', 'user', '1', 'admin', 'x', '', '', '', '{}', '', '', %s,"
            " %s, %s, %s, '', '')",
            [acme.pk, head.chain, head.seq + 1, head.hash, "0" * 64],
        )


def test_a_rotated_key_keeps_older_events_verifiable_and_a_dropped_one_makes_them_unverifiable(acme, manage, settings):
    old = settings.FLOWS_AUDIT_KEYS
    settings.FLOWS_AUDIT_KEYS = f"{keys.generate_chain_key('ak-next')},{old}"
    services.update_client(actor=None, client=acme, legal_name="Acme Rotated")
    assert chain(acme)[-1].key_id == "ak-next"
    assert manage("verify_audit").code == 0
    settings.FLOWS_AUDIT_KEYS = keys.generate_chain_key("ak-next").replace("ak-next", "ak-other")
    run = manage("verify_audit", "--client", "acme")
    assert run.code == 1 and all("is not in FLOWS_AUDIT_KEYS" in line for line in problems(run))


def test_a_legacy_unkeyed_prefix_is_accepted_and_counted_but_not_after_keyed_events(acme, manage):
    """Events written before the key (empty key id and mac) verify by their unkeyed hash, as a chain's prefix only."""
    as_superuser(*rewrite_chain(acme, legacy_up_to=2))
    run = manage("verify_audit", "--client", "acme")
    assert run.code == 0, run.out
    assert "Intact: 5 event(s) (2 legacy, unkeyed) in 1 chain(s)." in run.out
    last = chain(acme)[-1]
    as_superuser(("UPDATE audit_auditevent SET key_id = '', mac = '' WHERE id = %s", [last.id]))
    run = manage("verify_audit", "--client", "acme")
    assert problems(run) == [
        f"forged: event {last.id} (chain {acme.pk}, seq 5): no key id after keyed events (the database refuses those)"
    ]


def test_usage_errors(acme, manage):
    assert manage("verify_audit", "--since", "yesterday").code == 2
    assert manage("verify_audit", "--file", "x.jsonl", "--client", "acme").code == 2
    run = manage("verify_audit", "--checkpoints", "/nonexistent/checkpoints.jsonl")
    assert run.code == 1 and "cannot be read" in run.err


def test_a_disabled_audit_trigger_is_reported_by_the_role_check(committed):
    with connect_as_superuser() as connection:
        connection.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_fixed_by_db")
        try:
            assert "table audit_auditevent: trigger audit_event_fixed_by_db is missing or disabled" in dbroles.verify()
        finally:
            connection.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_fixed_by_db")
    assert dbroles.verify() == []


def test_a_missing_or_malformed_audit_key_stops_the_worker_at_boot(settings):
    import importlib

    from django.core.checks import run_checks
    from django.core.exceptions import ImproperlyConfigured

    import config.wsgi

    good = settings.FLOWS_AUDIT_KEYS
    settings.FLOWS_AUDIT_KEYS = ""
    assert [error.id for error in run_checks(tags=["audit"])] == ["audit.E001"]
    settings.FLOWS_AUDIT_KEYS = "k1:AAAA"
    with pytest.raises(ImproperlyConfigured, match=re.escape("audit.E001: FLOWS_AUDIT_KEYS: key 'k1' is 3 bytes")):
        importlib.reload(config.wsgi)
    settings.FLOWS_AUDIT_KEYS, settings.FLOWS_AUDIT_SIGNING_KEY = good, "s1:AAAA"
    assert [error.id for error in run_checks(tags=["audit"])] == ["audit.E002"]
    settings.FLOWS_AUDIT_SIGNING_KEY = keys.generate_signing_key("s1")[0]
    importlib.reload(config.wsgi)
