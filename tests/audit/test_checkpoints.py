"""Signed checkpoints: a chain rewritten consistently, even with the audit key, or cut short is caught against them."""

from __future__ import annotations

import json

import pytest

from audit import keys
from audit.models import AuditEvent, Checkpoint
from clients import services
from tests.audit.conftest import as_superuser, chain, problems, rewrite_chain


@pytest.fixture
def acme(committed, make_client):
    client = make_client("acme")
    for name in ("Acme One", "Acme Two", "Acme Three"):
        services.update_client(actor=None, client=client, legal_name=name)
    return client


@pytest.fixture
def shipped(acme, manage, tmp_path):
    """The checkpoints as operators ship them: audit_checkpoint's monthly file."""
    run = manage("audit_checkpoint", "--output-dir", str(tmp_path), "--json")
    assert run.code == 0, run.out + run.err
    return tmp_path / run.json["file"].rsplit("/", 1)[-1]


def test_a_run_signs_every_head_stores_it_and_records_itself(acme, manage, shipped):
    lines = [json.loads(line) for line in shipped.read_text().splitlines()]
    assert {line["chain"] for line in lines} == {str(acme.pk), "platform"}
    assert Checkpoint.objects.count() == 2
    platform = next(line for line in lines if line["chain"] == "platform")
    event = AuditEvent.objects.get(action="audit.checkpointed")
    assert platform["seq"] == event.seq and platform["hash"] == event.hash  # the run's own event is covered
    run = manage("verify_audit", "--checkpoints", str(shipped))
    assert run.code == 0 and "2 checkpoint(s) matched" in run.out
    printed = manage("audit_checkpoint").out.splitlines()
    assert len(printed) == 2 and all(json.loads(line)["signature"] for line in printed)


def test_a_chain_rewritten_consistently_with_the_audit_key_is_caught_only_by_the_checkpoints(acme, manage, shipped):
    """An attacker with superuser access and the HMAC key (a compromised application host) recomputes everything."""
    first = chain(acme)[0]
    as_superuser(
        ("UPDATE audit_auditevent SET actor_label = 'nobody' WHERE id = %s", [first.id]),
    )
    as_superuser(*rewrite_chain(acme))
    assert manage("verify_audit").code == 0  # the chain and the macs are consistent again
    run = manage("verify_audit", "--checkpoints", str(shipped))
    assert run.code == 1
    last = chain(acme)[-1]
    assert problems(run) == [
        f"rewritten: event {last.id} (chain {acme.pk}, seq {last.seq}): its hash differs from the one a checkpoint "
        f"signed {json.loads(shipped.read_text().splitlines()[0])['signed_at']}"
    ]


def test_a_chain_cut_short_with_its_head_moved_back_is_caught_by_the_checkpoints(acme, manage, shipped):
    last = chain(acme)[-1]
    as_superuser(
        ("DELETE FROM audit_auditevent WHERE id = %s", [last.id]),
        ("UPDATE audit_chainhead SET seq = seq - 1, hash = %s WHERE client_id = %s", [last.prev_hash, acme.pk]),
    )
    assert manage("verify_audit", "--client", "acme").code == 0
    run = manage("verify_audit", "--client", "acme", "--checkpoints", str(shipped))
    assert run.code == 1
    assert [line.split(":")[0] for line in problems(run)] == ["truncated"]


def test_a_checkpoint_changed_in_the_stream_or_signed_with_another_key_does_not_count(acme, manage, shipped, settings):
    lines = shipped.read_text().splitlines()
    changed = json.loads(lines[0]) | {"seq": 1}
    shipped.write_text("\n".join([json.dumps(changed), *lines[1:], "not json"]) + "\n")
    run = manage("verify_audit", "--checkpoints", str(shipped))
    assert run.code == 1
    assert problems(run) == [
        f"checkpoint: chain {changed['chain']}: line 1: signature does not verify",
        "checkpoint: chain -: line 3 is not a checkpoint",
    ]
    settings.FLOWS_AUDIT_SIGNING_KEY = keys.generate_signing_key("other")[0]
    run = manage("verify_audit", "--checkpoints", str(shipped))
    assert run.code == 1 and "not a trusted one" in run.out  # the old public key is not trusted any more
    settings.FLOWS_AUDIT_PUBLIC_KEYS = keys.generate_signing_key("unrelated")[1]
    assert manage("verify_audit", "--checkpoints", str(shipped)).code == 1


def test_a_rotated_signing_key_keeps_old_checkpoints_verifiable_through_its_public_half(
    acme, manage, settings, tmp_path
):
    old_private, old_public = keys.generate_signing_key("old")
    settings.FLOWS_AUDIT_SIGNING_KEY = old_private
    stream = tmp_path / "checkpoints.jsonl"
    stream.write_text(manage("audit_checkpoint").out)
    settings.FLOWS_AUDIT_SIGNING_KEY = keys.generate_signing_key("new")[0]
    settings.FLOWS_AUDIT_PUBLIC_KEYS = old_public
    run = manage("verify_audit", "--checkpoints", str(stream))
    assert run.code == 0, run.out


def test_resume_starts_after_the_newest_verified_checkpoint(acme, manage, shipped):
    services.update_client(actor=None, client=acme, legal_name="Acme Later")
    summary = manage("verify_audit", "--client", "acme", "--resume", "--json").json
    assert summary["events"] == 1
    later = chain(acme)[-1]
    as_superuser(("UPDATE audit_auditevent SET actor_label = 'x' WHERE id = %s", [later.id]))
    run = manage("verify_audit", "--client", "acme", "--resume")
    assert run.code == 1 and f"edited: event {later.id}" in run.out


def test_without_a_signing_key_nothing_is_written(acme, manage, settings):
    settings.FLOWS_AUDIT_SIGNING_KEY = ""
    run = manage("audit_checkpoint")
    assert run.code == 1 and "No checkpoint signing key" in run.err
    assert not Checkpoint.objects.exists() and not AuditEvent.objects.filter(action="audit.checkpointed").exists()
    assert manage("audit_checkpoint", "--output-dir", "/nonexistent").code == 1
