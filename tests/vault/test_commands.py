"""Vault commands through manage.py: values in only through stdin, out only through reveal_secret."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from audit.models import AuditEvent
from tests.clients.test_commands import assert_one_line_error
from vault import keyring
from vault.models import DataKey, Secret, SecretAccess, SigningKey

VALUE = "whsec_9f8e7d6c5b4a-not-for-your-eyes"


@pytest.fixture
def acme(manage):
    assert (
        manage(
            "create_client", "--code", "acme", "--name", "Acme", "--domain", "acme.thepia.net", "--region", "EU"
        ).code
        == 0
    )


def set_secret(manage, monkeypatch, value: str, *argv: str):
    monkeypatch.setattr(sys, "stdin", io.StringIO(value))
    return manage("set_secret", "acme", "--provider", "stripe", "--type", "webhook_secret", *argv)


def test_a_secrets_life_through_the_commands(manage, monkeypatch, acme, caplog):
    caplog.set_level(logging.DEBUG)
    outputs = []
    stored = set_secret(manage, monkeypatch, VALUE + "\n", "--tag", "billing", "--json")
    assert stored.code == 0 and stored.json["secret"]["name"] == "stripe-webhook_secret"
    outputs.append(stored)
    outputs.append(listed := manage("list_secrets", "acme"))
    assert "stripe-webhook_secret" in listed.out
    outputs.append(manage("list_secrets", "acme", "--json"))
    outputs.append(manage("vault_status"))
    outputs.append(manage("client_status", "acme", "--json"))

    revealed = manage("reveal_secret", "acme", "stripe-webhook_secret", "--reason", "rotating the Stripe endpoint")
    assert revealed.code == 0 and revealed.out == VALUE + "\n"  # the value, stripped of echo's newline, alone
    assert (
        manage("reveal_secret", "acme", "stripe-webhook_secret", "--reason", "audit", "--json").json["value"] == VALUE
    )

    assert all(VALUE not in run.out + run.err for run in outputs)
    assert VALUE not in caplog.text
    assert (
        SecretAccess.objects.filter(access_type="reveal", actor_label__startswith="manage.py reveal_secret").count()
        == 2
    )
    assert AuditEvent.objects.filter(action="secret.revealed").count() == 2


def test_an_empty_value_is_refused(manage, monkeypatch, acme):
    assert_one_line_error(set_secret(manage, monkeypatch, ""), 1)
    assert not Secret.objects.exists()


def test_a_reveal_without_a_reason_or_of_an_unknown_secret_is_refused(manage, monkeypatch, acme):
    set_secret(manage, monkeypatch, VALUE)
    no_reason = manage("reveal_secret", "acme", "stripe-webhook_secret", "--reason", "")
    assert_one_line_error(no_reason, 1)
    assert "Say why" in no_reason.err and VALUE not in no_reason.out
    unknown = manage("reveal_secret", "acme", "nope", "--reason", "looking around")
    assert_one_line_error(unknown, 1)
    assert "has no secret 'nope'" in unknown.err
    assert manage("reveal_secret", "acme", "stripe-webhook_secret").code == 2  # --reason is required


@pytest.mark.parametrize(
    "argv",
    [
        ["rotate_keys"],  # one of --client, --master, --retire-master
        ["rotate_keys", "--client", "acme", "--master"],
        ["rotate_keys", "--master", "--batch-size", "0"],
        ["rewrap", "--batch-size", "0"],
        ["set_secret", "acme", "--provider", "stripe", "--type", "magic"],
        ["set_secret", "acme", "--provider", "stripe", "--type", "api_key", "--expires-in-days", "0"],
        ["erase_client", "acme"],  # --confirm is required
    ],
)
def test_usage_errors_exit_2(manage, argv):
    run = manage(*argv)
    assert run.code == 2 and "Traceback" not in run.err, run


def test_rotation_rewrap_and_retirement_through_the_commands(manage, monkeypatch, acme, settings):
    set_secret(manage, monkeypatch, VALUE)
    assert manage("rotate_keys", "--client", "acme").code == 0
    assert manage("rewrap", "--dry-run", "--json").json["pending"] == 1
    assert manage("rewrap", "--json").json["rewrapped"] == 1
    assert Secret.objects.get().data_key_version == 2

    old = keyring.load().primary.id
    assert_one_line_error(manage("generate_master_key", "--id", "no spaces allowed"), 1)
    assert_one_line_error(manage("generate_master_key", "--id", "next\n"), 1)  # not a two-line entry
    new_entry = manage("generate_master_key", "--id", "next").out.strip()
    assert keyring.parse(new_entry).primary.id == "next"
    settings.FLOWS_MASTER_KEYS = f"{new_entry},{settings.FLOWS_MASTER_KEYS}"
    refused = manage("rotate_keys", "--retire-master", old)
    assert_one_line_error(refused, 1)
    assert "still wraps 2 data key(s)" in refused.err
    assert manage("rotate_keys", "--master").code == 0
    assert manage("rotate_keys", "--retire-master", old).code == 0
    assert manage("vault_status", "--json").json["wrapped_by_master_key"] == {"next": 2}
    settings.FLOWS_MASTER_KEYS = new_entry
    assert manage("reveal_secret", "acme", "stripe-webhook_secret", "--reason", "after rotation").out.strip() == VALUE


def test_erasure_through_the_command(manage, monkeypatch, acme):
    set_secret(manage, monkeypatch, VALUE)
    wrong = manage("erase_client", "acme", "--confirm", "acm")
    assert_one_line_error(wrong, 1)
    assert DataKey.objects.filter(status="active").exists()
    assert manage("erase_client", "acme", "--confirm", "acme", "--json").json["already_erased"] is False
    assert manage("erase_client", "acme", "--confirm", "acme", "--json").json["already_erased"] is True
    gone = manage("reveal_secret", "acme", "stripe-webhook_secret", "--reason", "after erasure")
    assert_one_line_error(gone, 1)
    assert "acme was erased" in gone.err
    assert manage("client_status", "acme").code == 0  # the trail stays readable


def test_signing_key_rotation(manage):
    first = manage("rotate_signing_key", "--json").json["kid"]
    second = manage("rotate_signing_key", "--json").json["kid"]
    assert first != second
    assert dict(SigningKey.objects.values_list("kid", "status")) == {first: "retiring", second: "active"}


@pytest.mark.parametrize(
    "key_id", ["", "never-heard-of", "mk1\nforged", "'; DROP TABLE vault_datakey; --", "k" * 10_000]
)
def test_retiring_a_master_key_that_is_malformed_or_unknown_is_refused_and_records_nothing(manage, acme, key_id):
    for argv in (["rotate_keys", "--retire-master", key_id], ["rotate_keys", "--retire-master", key_id, "--json"]):
        refused = manage(*argv)
        assert refused.code == 1, refused
        assert "Traceback" not in refused.err and len(refused.err.strip().splitlines()) == 1
    assert not AuditEvent.objects.filter(action="vault.master_key_retired").exists()


def test_an_empty_client_is_a_client_that_does_not_exist(manage, acme):
    refused = manage("rotate_keys", "--client", "")
    assert_one_line_error(refused, 1)
    assert "No client with code or id ''" in refused.err
    assert not AuditEvent.objects.filter(action__startswith="vault.").exists()
