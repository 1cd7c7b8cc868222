"""The command base class: one JSON object under --json whatever fails, one escaped line on stderr, no traceback."""

from __future__ import annotations

import json

import django
import pytest
from django.conf import settings
from django.db import connections

from config.commands import FlowsCommand, Result, UsageError, printable
from config.errors import NotFound


class Probe(FlowsCommand):
    """A command that fails the way it is told to, to reach each failure path of the base class."""

    help = "Fail on purpose."
    example = "manage.py probe bug"

    def add_arguments(self, parser):
        parser.add_argument("failure", choices=["none", "refused", "usage", "database", "bug", "not-utf8"])
        parser.add_argument("--label", default="")

    def run(self, **options):
        failure = options["failure"]
        if failure == "refused":
            raise NotFound(f"No client with code or id '{options['label']}'.", code="client_not_found")
        if failure == "usage":
            raise UsageError("give at least one of --name, --domain")
        if failure == "database":
            with connections[settings.CONSOLE_DB_ALIAS].cursor() as cursor:
                cursor.execute("SELECT 1 / 0")
        if failure == "bug":
            raise KeyError("the bug's details")
        if failure == "not-utf8":
            b"\xffsecret".decode()
        return Result({"label": options["label"]}, f"label: {options['label']}\nsecond line")


PREFIX = f"manage.py {__name__.rsplit('.', 1)[-1]}: error: "  # commands are named after their module


def run(capsys, *argv: str):
    capsys.readouterr()
    django.setup()  # as manage.py does: the log handler then writes to this test's stderr, not an earlier one's
    try:
        Probe().run_from_argv(["manage.py", "probe", *argv])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("committed")
@pytest.mark.parametrize(
    ("argv", "exit_code", "error_code"),
    [
        (["refused"], 1, "client_not_found"),
        (["usage"], 2, "usage"),
        (["database"], 1, "database_error"),
        (["bug"], 1, "internal_error"),
        (["not-utf8"], 1, "not_utf8"),
        (["maybe"], 2, "usage"),  # argparse: invalid choice
        (["none", "--no-such-flag"], 2, "usage"),  # argparse: unrecognised argument
        ([], 2, "usage"),  # argparse: missing argument
        (["none", "--label", "a\x00b"], 2, "usage"),
        (["none", "--label", "acme\udcff"], 2, "usage"),
    ],
)
def test_every_failure_is_one_json_object_and_one_line(capsys, argv, exit_code, error_code):
    code, out, err = run(capsys, *argv, "--json")
    assert code == exit_code
    document = json.loads(out)
    assert document["ok"] is False and document["error"]["code"] == error_code, document
    assert "Traceback" not in out + err

    code, out, err = run(capsys, *argv)
    assert code == exit_code and out == ""
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and errors[0] == err.splitlines()[-1], err
    assert "the bug's details" not in err  # --traceback shows them, not the one line


def test_an_argument_with_nul_or_bytes_that_are_not_utf8_is_named(capsys):
    code, _, err = run(capsys, "none", "--label", "acme\udcff")
    assert code == 2
    assert err.strip() == PREFIX + "argument --label: holds a NUL character or bytes that are not UTF-8 text"


def test_a_refusal_echoing_a_value_stays_one_escaped_line(capsys):
    code, out, err = run(capsys, "refused", "--label", "acme\nmanage.py probe: error: forged\x1b[2J\u202e")
    assert code == 1 and out == ""
    assert err == PREFIX + "No client with code or id 'acme\\nmanage.py probe: error: forged\\x1b[2J\\u202e'.\n"


def test_human_output_escapes_control_characters_in_each_line(capsys):
    code, out, _ = run(capsys, "none", "--label", "tab\there\x1b[31m red \u202eevil")
    assert code == 0
    assert out == "label: tab\\there\\x1b[31m red \\u202eevil\nsecond line\n"
    _, out, _ = run(capsys, "none", "--label", "x\u202e", "--json")
    assert json.loads(out) == {"ok": True, "label": "x\u202e"} and "\u202e" not in out  # JSON escapes it


def test_printable_escapes_what_would_drive_a_terminal_and_keeps_the_rest():
    assert printable("Société Générale 日本 O'Brien \\n") == "Société Générale 日本 O'Brien \\n"
    assert printable("a\nb\r\tc\x00\x1b[2J\x7f\x85") == "a\\nb\\r\\tc\\x00\\x1b[2J\\x7f\\x85"
    assert printable("\u202eevil\u2066\u200f\u2028\udcff") == "\\u202eevil\\u2066\\u200f\\u2028\\udcff"
    assert printable(printable("a\nb")) == printable("a\nb")
