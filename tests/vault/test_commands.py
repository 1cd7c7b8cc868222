"""Vault commands through manage.py: values in only through stdin, out only through reveal_secret."""

from __future__ import annotations

import base64
import io
import logging
import sys

import pytest
from django.core.management import ManagementUtility, call_command

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


def stdin(monkeypatch, data: bytes) -> None:
    """Piped input, as a process gets it: text over bytes."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def set_secret(manage, monkeypatch, value: str | bytes, *argv: str):
    stdin(monkeypatch, value.encode() if isinstance(value, str) else value)
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


# A DER certificate's first bytes, a NUL, bytes that are not UTF-8, and a last byte that is a newline.
BINARY = b"0\x82\x03\x1f0\x82\x02\x07\xa0\x03\x02\x01\x02\x00\xff\xfe\x80 not text \x0a"


def reveal(manage, *argv: str):
    return manage("reveal_secret", "acme", "stripe-webhook_secret", "--reason", "certificate check", *argv)


def piped_reveal(monkeypatch) -> bytes:
    """reveal_secret's stdout as a pipe gets it: bytes (pytest's capture would decode them as text)."""
    pipe = io.BytesIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", io.TextIOWrapper(pipe, encoding="utf-8", write_through=True))
        ManagementUtility(
            ["manage.py", "reveal_secret", "acme", "stripe-webhook_secret", "--reason", "to a pipe"]
        ).execute()
    return pipe.getvalue()


def test_a_binary_value_from_stdin_comes_back_byte_for_byte(manage, monkeypatch, acme):
    stored = set_secret(manage, monkeypatch, BINARY, "--json")
    assert stored.code == 0, stored
    assert piped_reveal(monkeypatch) == BINARY  # the bytes, the last newline included
    as_json = reveal(manage, "--json").json
    assert (as_json["encoding"], base64.b64decode(as_json["value"])) == ("base64", BINARY)
    assert base64.b64decode(reveal(manage, "--base64").out) == BINARY


def test_where_bytes_cannot_go_a_binary_value_is_printed_base64_with_a_note(manage, monkeypatch, acme):
    set_secret(manage, monkeypatch, BINARY)
    out, err = io.StringIO(), io.StringIO()  # text only, like a terminal
    call_command("reveal_secret", "acme", "stripe-webhook_secret", "--reason", "on a terminal", stdout=out, stderr=err)
    assert base64.b64decode(out.getvalue()) == BINARY
    assert f"is binary ({len(BINARY)} bytes)" in err.getvalue()


def test_a_binary_value_from_a_file_or_base64_and_back_to_a_file(manage, monkeypatch, acme, tmp_path):
    source = tmp_path / "okta-signing.der"
    source.write_bytes(BINARY)
    assert set_secret(manage, monkeypatch, b"ignored", "--file", str(source)).code == 0
    target = tmp_path / "revealed.der"
    wrote = reveal(manage, "--output", str(target))
    assert wrote.code == 0 and BINARY not in wrote.out.encode() and "bytes) to" in wrote.out
    assert target.read_bytes() == BINARY and target.stat().st_mode & 0o777 == 0o600
    assert_one_line_error(reveal(manage, "--output", str(target)), 1)  # never overwrites

    encoded = base64.encodebytes(BINARY[::-1]).decode()  # with line breaks, as base64(1) writes it
    assert set_secret(manage, monkeypatch, encoded, "--base64").code == 0
    assert base64.b64decode(reveal(manage, "--base64").out) == BINARY[::-1]
    assert SecretAccess.objects.filter(access_type="reveal").count() == 2  # the refused one revealed nothing


def test_a_text_value_keeps_its_text_behaviour(manage, monkeypatch, acme, tmp_path):
    pem = "-----BEGIN CERTIFICATE-----\r\nMIIC\tHzCCAgeg\r\n-----END CERTIFICATE-----\n"
    assert set_secret(manage, monkeypatch, pem).code == 0
    shown = reveal(manage)
    assert shown.out == pem  # one trailing newline dropped on input, one added on output; \r and \t kept
    assert reveal(manage, "--json").json["encoding"] == "utf-8"
    (tmp_path / "pem").write_text(pem)
    assert set_secret(manage, monkeypatch, b"", "--file", str(tmp_path / "pem")).code == 0
    assert reveal(manage, "--json").json["value"] == pem[:-1]


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ((b"not base64!\n", "--base64"), "not valid base64"),
        ((b"x" * 200_000,), "larger than 65536 bytes"),
        ((b"", "--file", "/nonexistent/cert.der"), "Cannot read /nonexistent/cert.der"),
        ((b"", "--file", "/"), "Cannot read /"),
    ],
)
def test_an_unreadable_or_bad_value_is_refused(manage, monkeypatch, acme, given, reason):
    refused = set_secret(manage, monkeypatch, *given)
    assert_one_line_error(refused, 1)
    assert reason in refused.err
    assert not Secret.objects.exists()


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
