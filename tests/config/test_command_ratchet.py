"""Ratchet: every Flows command meets hostile input with a one-line refusal (exit 1 or 2), never a traceback.

Each FlowsCommand among the installed management commands runs in-process through Django's real
entry point, with and without --json: with an unknown flag, with each hostile value in each
positional argument and each value-taking option its parser declares, and with bytes that are not
UTF-8 on stdin. Every problem of every run is collected and reported together. A new command or
option is covered the day it is added, and fails here until it handles bad input.
"""

from __future__ import annotations

import io
import json
import re
import sys
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.management import ManagementUtility, get_commands, load_command_class

from clients import services as client_services
from clients.models import ApiKey
from config.commands import FlowsCommand
from invitations import tokens
from invitations.services import Invitee, issue_invitation
from staff import services as staff_services
from tests.conftest import connect_as
from vault import services as vault_services

FORGED = "manage.py: error: a forged line"
HOSTILE = [
    "",
    "acme\x00x",
    f"acme\n{FORGED}",
    "acme\n",  # `$` in a regular expression lets a final newline through
    "\u202eemca",  # RIGHT-TO-LEFT OVERRIDE
    "acme\udcff",  # what Python makes of argv bytes that are not UTF-8
    "a" * 10_000,
    "'; DROP TABLE clients_client; --",
    "[" * 5000,
]
NOT_UTF8 = b"\xff\xfe\xc3\x28 not UTF-8 \x80\n"
TEXT_STDIN = b"ratchet-value\n"
# How Python decodes stdin in a UTF-8 locale, and in its UTF-8 mode (PYTHONUTF8=1, or the C locale).
STDIN_ERRORS = ("strict", "surrogateescape")

# Never in any output: C0 and C1 controls but the newline, line and paragraph separators, bidi controls and
# lone surrogates. Written out here rather than imported, so that the code under test is not its own judge.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")

# Options of every Django command that act on the process before the command runs: --settings sets
# DJANGO_SETTINGS_MODULE and --pythonpath extends sys.path, for the rest of the test session too.
NOT_SUBSTITUTED = {
    "settings": "Django's own; changes the process environment",
    "pythonpath": "Django's own; changes sys.path",
}
# Commands left out, each with its reason. Every Flows command takes part today (none serves forever or
# needs a terminal).
EXCLUDED: dict[str, str] = {}


def flows_commands() -> dict[str, FlowsCommand]:
    commands = {}
    for name, app in sorted(get_commands().items()):
        command = load_command_class(app, name)
        if isinstance(command, FlowsCommand):
            commands[name] = command
    return commands


@dataclass
class World:
    """The objects a command's valid arguments name: a client of its own, so that commands cannot disturb each other."""

    client: str
    api_key: str
    invitation: str
    token: str

    def valid(self) -> dict[str, str]:
        """A valid value for each argument some command requires, by its dest."""
        return {
            "client": self.client,
            "app_code": "onboarding",
            "app": "onboarding",
            "secret": "stripe-webhook_secret",
            "key": self.api_key,
            "invitation": self.invitation,
            "token": self.token,
            "reason": "ratchet: hostile input",
            "confirm": self.client,
            "code": f"{self.client}-new",
            "name": "Ada Lovelace",
            "domain": f"{self.client}-new.thepia.net",
            "company_email": "ada.lovelace@acme.example",
            "provider": "stripe",
            "user": f"{self.client}-staff",
            "username": f"{self.client}-new-staff",
            "email": "staff@thepia.net",
            "role": "Support",
            "csv": "-",  # create_invitations reads the ratchet's stdin
            "output": "ratchet.flowsbak",  # backup_client, in the test's own directory
            "file": "no-such-backup.flowsbak",  # restore_client: refused early, nothing restored
        }


def make_world(code: str) -> World:
    client = client_services.create_client(
        actor=None, code=code, legal_name=f"{code} Ltd", domain=f"{code}.thepia.net", region="EU", tier="enterprise"
    )
    application = client_services.configure_application(actor=None, client=client, app_code="onboarding")
    api_key, _ = client_services.create_api_key(
        actor=None, client=client, name="ratchet", scopes=[ApiKey.Scope.CONFIGURATION_READ]
    )
    vault_services.set_secret(
        actor=None, client=client, provider="stripe", secret_type="webhook_secret", value="whsec-ratchet"
    )
    invitation, token = issue_invitation(
        actor=None,
        client=client,
        application=application,
        invitee=Invitee("Ada Lovelace", "ada.lovelace@acme.example"),
        expires_in=timedelta(days=7),
    )
    staff_services.create_staff_user(actor=None, username=f"{code}-staff", email="staff@thepia.net", role="Support")
    return World(code, api_key.prefix, invitation.code, token)


class Arguments:
    """A command's parser read as slots: valid words for a run, and the same with one slot replaced."""

    def __init__(self, command: FlowsCommand, name: str, valid: dict[str, str]):
        parser = command.create_parser("manage.py", name)
        self.slots = [a for a in parser._actions if a.nargs != 0 and a.dest not in NOT_SUBSTITUTED]
        self.rivals = {
            id(action): {id(member) for member in group._group_actions}
            for group in parser._mutually_exclusive_groups
            for action in group._group_actions
        }
        needed = [a for a in self.slots if a.required]
        needed += [group._group_actions[0] for group in parser._mutually_exclusive_groups if group.required]
        self.valid_words = {}
        for action in needed:
            if action.choices:
                value = str(next(iter(action.choices)))
            elif action.dest in valid:
                value = valid[action.dest]
            else:
                pytest.fail(f"{name}: give the ratchet a valid value for the required argument '{action.dest}'")
            self.valid_words[id(action)] = self._words(action, value)

    @staticmethod
    def _words(action, value: str) -> list[str]:
        return [action.option_strings[0], value] if action.option_strings else [value]

    def argv(self, replace=None, value: str = "") -> list[str]:
        """Valid words, in the parser's order, with `value` in `replace`'s place (and its exclusive rivals left out)."""
        words = {
            key: w
            for key, w in self.valid_words.items()
            if replace is None or key not in self.rivals.get(id(replace), ())
        }
        if replace is not None:
            words[id(replace)] = self._words(replace, value)
        ordered = sorted(self.slots, key=lambda action: bool(action.option_strings))  # positional ones first
        return [word for action in ordered for word in words.get(id(action), [])]


@dataclass
class Outcome:
    code: object
    out: str
    err: str
    exception: BaseException | None = None


def run_command(capsys, monkeypatch, argv: list[str], stdin: bytes, errors: str) -> Outcome:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8", errors=errors))
    capsys.readouterr()
    try:
        ManagementUtility(["manage.py", *argv]).execute()
        code, exception = 0, None
    except SystemExit as exit_:
        code, exception = exit_.code or 0, None
    except BaseException as error:  # reported with the rest, not raised
        code, exception = None, error
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err, exception)


def json_problems(outcome: Outcome) -> list[str]:
    try:
        document = json.loads(outcome.out)
    except ValueError:
        return [f"--json printed no single JSON object: {outcome.out[:200]!r}"]
    if not isinstance(document, dict) or document.get("ok") is not (outcome.code == 0):
        return [f"--json printed {outcome.out[:200]!r} for exit {outcome.code}"]
    return []


def stderr_problems(outcome: Outcome) -> list[str]:
    lines = outcome.err.strip().splitlines()
    if outcome.code == 1 and len(lines) != 1:
        return [f"refused with {len(lines)} lines on stderr: {outcome.err[-300:]!r}"]
    if outcome.code == 2 and sum(": error: " in line for line in lines) != 1:
        return [f"usage error without exactly one error line: {outcome.err[-300:]!r}"]
    return []


def problems_of(outcome: Outcome, *, as_json: bool, wrote: bool) -> list[str]:
    if outcome.exception is not None:
        return [f"raised {outcome.exception.__class__.__name__}: {str(outcome.exception)[:200]!r}"]
    found = [] if outcome.code in (0, 1, 2) else [f"exit code {outcome.code!r}"]
    if "Traceback" in outcome.out + outcome.err:
        found.append("printed a traceback")
    found += [f"{symptom}: {outcome.err[-300:]!r}" for symptom in ("internal error", "database error")
              if symptom in outcome.err]  # fmt: skip
    if CONTROL.search(outcome.out + outcome.err):
        found.append("printed a control character")
    if any(line.startswith(FORGED) for line in (outcome.out + outcome.err).splitlines()):
        found.append("printed a line that a value forged")
    if outcome.code and wrote:
        found.append("refused, yet wrote an audit event")
    return found + (json_problems(outcome) if as_json else stderr_problems(outcome))


def shown(words: list[str]) -> str:
    return " ".join(repr(word) if len(word) <= 60 else f"{word[:12]!r}…({len(word):,} characters)" for word in words)


@pytest.mark.usefixtures("committed")
def test_every_command_refuses_hostile_input_cleanly(capsys, monkeypatch, settings, tmp_path):
    settings.DEBUG = True  # ensure_dev_superuser runs only then
    monkeypatch.chdir(tmp_path)  # hostile values become file names too (reveal_secret --output)
    vault_services.rotate_signing_key(actor=None)
    tokens.public_keys.clear()
    commands = flows_commands()
    assert {"client_status", "set_secret", "validate_invitation"} <= set(commands), "discovery found too little"
    assert set(EXCLUDED) <= set(commands), "an excluded command no longer exists: drop it from EXCLUDED"
    # The commands close Django's connections when they end; this one stays open to watch the audit trail.
    audit = connect_as(django_settings.CONSOLE_DB_ALIAS)
    audit.autocommit = True
    failures = []

    def last_event() -> int:
        return audit.execute("SELECT coalesce(max(id), 0) FROM audit_auditevent").fetchone()[0]

    def check(argv: list[str], stdin: bytes = TEXT_STDIN, errors: str = "strict") -> None:
        nonlocal latest
        for words in (argv, [*argv, "--json"]):
            outcome = run_command(capsys, monkeypatch, words, stdin, errors)
            now = last_event()
            problems = problems_of(outcome, as_json=words[-1] == "--json", wrote=now != latest)
            latest = now
            failures.extend(f"{shown(words)}{' < not UTF-8' if stdin == NOT_UTF8 else ''}: {p}" for p in problems)

    for index, (name, command) in enumerate(commands.items()):
        if name in EXCLUDED:
            continue
        arguments = Arguments(command, name, make_world(f"r{index}").valid())
        latest = last_event()
        check([name, *arguments.argv(), "--no-such-flag"])
        for slot in arguments.slots:
            for value in HOSTILE:
                check([name, *arguments.argv(slot, value)])
        for errors in STDIN_ERRORS:
            check([name, *arguments.argv()], NOT_UTF8, errors)
            for slot in arguments.slots:
                if not slot.option_strings:  # "-" reads stdin, in the commands that take it
                    check([name, *arguments.argv(slot, "-")], NOT_UTF8, errors)

    audit.close()
    assert not failures, f"{len(failures)} problem(s):\n" + "\n".join(failures)
