"""Invitation commands through manage.py: tokens out once, codes on rejection, cleanup for schedulers."""

from __future__ import annotations

import io
import sys

import pytest

from clients.locks import single_run
from invitations.models import Invitation
from invitations.services import CLEANUP_LOCK
from tests.clients.test_commands import assert_one_line_error
from vault import services as vault_services

ISSUE = ["create_invitation", "--client", "acme", "--app", "onboarding", "--name", "Ada Lovelace",
         "--company-email", "ada@acme.example", "--private-email", "ada@home.example"]  # fmt: skip


@pytest.fixture
def acme(manage):
    vault_services.rotate_signing_key(actor=None)
    argv = ["create_client", "--code", "acme", "--name", "Acme", "--domain", "acme.thepia.net", "--region", "EU"]
    assert manage(*argv, "--tier", "pro").code == 0
    assert manage("configure_application", "acme", "onboarding").code == 0


def test_an_invitations_life_through_the_commands(manage, monkeypatch, acme):
    issued = manage(*ISSUE, "--expires-in", "2d", "--permissions", "manager,viewer", "--json")
    assert issued.code == 0, issued
    token, code = issued.json["token"], issued.json["invitation"]["code"]
    assert issued.json["link"] == f"https://acme.thepia.net/onboarding/invitation#token={token}"
    assert issued.json["invitation"]["permissions"] == ["manager", "viewer"]

    valid = manage("validate_invitation", token)
    assert valid.code == 0 and f"valid: {code}" in valid.out
    monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
    redeemed = manage("redeem_invitation", "-", "--json")
    assert redeemed.json["invitee"] == {"name": "Ada Lovelace", "company_email": "ada@acme.example",
                                        "private_email": "ada@home.example"}  # fmt: skip
    again = manage("validate_invitation", token, "--json")
    assert again.code == 1 and again.json["error"]["code"] == "already_used"
    assert_one_line_error(manage("redeem_invitation", token), 1)

    listed = manage("list_invitations", "--client", "acme", "--json")
    assert listed.json["seats_used"] == 1 and listed.json["invitations"][0]["status"] == "accepted"
    assert "Ada" not in manage("list_invitations", "--client", "acme").out


def test_resend_and_revoke_through_the_commands(manage, acme):
    first = manage(*ISSUE, "--json").json
    code = first["invitation"]["code"]
    resent = manage(
        "resend_invitation", code, "--name", "Ada Lovelace", "--company-email", "ADA@acme.example", "--json"
    )
    assert resent.code == 0 and resent.json["invitation"]["resend_count"] == 1
    stale = manage("validate_invitation", first["token"], "--json")
    assert stale.json["error"]["code"] == "hash_mismatch"
    assert manage("revoke_invitation", code, "--reason", "wrong person").code == 0
    assert manage("revoke_invitation", code, "--reason", "wrong person").code == 0  # safe to re-run
    assert manage("validate_invitation", resent.json["token"], "--json").json["error"]["code"] == "revoked"
    assert_one_line_error(manage("revoke_invitation", "INV-NOSUCH", "--reason", "x"), 1)


@pytest.mark.parametrize(
    "argv",
    [
        [*ISSUE, "--expires-in", "3w"],
        [*ISSUE, "--uses", "many"],
        ["create_invitation", "--client", "acme"],
        ["cleanup_invitations", "--batch-size", "0"],
        ["cleanup_invitations", "--retention-days", "-1"],
        ["list_invitations", "--client", "acme", "--status", "lost"],
        ["revoke_invitation", "INV-X"],  # --reason is required
    ],
)
def test_usage_errors_exit_2(manage, acme, argv):
    run = manage(*argv)
    assert run.code == 2 and "Traceback" not in run.err, run


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--expires-in", "30m"], "between 1 hour and 30 days"),
        (["--expires-in", "31d"], "between 1 hour and 30 days"),
        (["--uses", "0"], "between 1 and 1000"),
    ],
)
def test_refused_issues_exit_1(manage, acme, extra, message):
    run = manage(*ISSUE, *extra)
    assert_one_line_error(run, 1)
    assert message in run.err and not Invitation.objects.exists()


def test_cleanup_for_schedulers(manage, acme):
    assert manage("cleanup_invitations", "--dry-run", "--json").json["would_expire"] == 0
    with single_run(CLEANUP_LOCK) as held:
        assert held
        busy = manage("cleanup_invitations")
        assert busy.code == 0 and "Another cleanup_invitations run holds the lock" in busy.out
    done = manage("cleanup_invitations", "--json")
    assert done.code == 0 and done.json == {"dry_run": False, "expired": 0, "locked": False, "ok": True, "purged": 0}
