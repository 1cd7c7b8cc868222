"""The base class of every Flows Console command: --json, exit codes 0/1/2, examples in --help, --client lookup.

Subclasses implement `run(**options)` and return a `Result`; they raise domain errors
(`config.errors.FlowsError`) for refused or invalid operations, which become exit code 1 with a
one-line reason on stderr. Usage errors exit 2. With --json, stdout carries exactly one JSON object
whatever happens: the result, or `{"ok": false, "error": {"code", "message"}}`. Human output shows
values through `printable()`, so a value can never forge a line or drive the terminal.
"""

from __future__ import annotations

import getpass
import json
import logging
import re
import sys
from argparse import RawDescriptionHelpFormatter
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, OperationalError

from config.errors import FlowsError
from config.validation import CONTROL_CHARACTERS

log = logging.getLogger(__name__)

EXIT_REFUSED = 1
EXIT_USAGE = 2
# What no argument can mean: PostgreSQL refuses NUL in text, and a lone surrogate is how Python hands over
# argv bytes that are not UTF-8.
UNREADABLE = re.compile("[\x00\ud800-\udfff]")


def printable(value: object) -> str:
    """`value` as text that shows what it is on one line: control, line-breaking and bidi characters escaped
    the way Python writes them (`\\n`, `\\x1b`, `\\u202e`). Every command prints user-supplied values through it."""
    return CONTROL_CHARACTERS.sub(lambda match: repr(match.group())[1:-1], str(value))


@dataclass
class Result:
    """What a command did: `data` for --json, `text` for people.

    `text` is shown line by line through `printable()` unless `verbatim`: a revealed value is the
    output itself, byte for byte.
    """

    data: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    verbatim: bool = False


@dataclass(frozen=True)
class CommandActor:
    """Who acts when an operator runs a command: recorded in the audit trail as `manage.py <name> (<os user>)`."""

    command: str

    @property
    def audit_principal(self) -> tuple[str, str, str]:
        try:
            user = printable(getpass.getuser())[:64]  # from LOGNAME or USER: anything the environment says
        except (KeyError, OSError):
            user = "unknown"
        return "system", user, f"manage.py {self.command} ({user})"


class UsageError(CommandError):
    def __init__(self, message: str):
        super().__init__(message, returncode=EXIT_USAGE)


class FlowsCommand(BaseCommand):
    example: str = ""
    requires_system_checks: list = []  # `manage.py check --database` and health_check cover them
    _json_requested = False
    _argument_names: dict[str, str] = {}

    def create_parser(self, prog_name, subcommand, **kwargs):
        epilog = f"Example:\n  {self.example}" if self.example else None
        parser = super().create_parser(
            prog_name, subcommand, formatter_class=RawDescriptionHelpFormatter, epilog=epilog, **kwargs
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print one JSON object on stdout.")
        self._argument_names = {
            action.dest: next((name for name in action.option_strings if name.startswith("--")), action.dest)
            for action in parser._actions
        }
        usage_error = parser.error

        def error(message: str):
            message = printable(message)  # argparse echoes unrecognised arguments as they are
            if self._json_requested:
                self.stdout.write(json.dumps({"ok": False, "error": {"code": "usage", "message": message}}))
            usage_error(message)

        parser.error = error
        return parser

    def run_from_argv(self, argv):
        # argparse refuses bad arguments before `handle` knows of --json: the raw argv tells.
        self._json_requested = "--json" in argv[2:]
        super().run_from_argv(argv)

    def add_client_argument(self, parser, *, positional: bool = True) -> None:
        help_text = "The client's code (e.g. acme) or id."
        if positional:
            parser.add_argument("client", help=help_text)
        else:
            parser.add_argument("--client", required=True, help=help_text)

    @property
    def actor(self) -> CommandActor:
        return CommandActor(self.__module__.rsplit(".", 1)[-1])

    def execute(self, *args, **options):
        # On a terminal, a refusal reads like argparse's usage errors: `manage.py <name>: error: …`
        # (Django's default prefixes the exception class). call_command() still gets the exception.
        try:
            return super().execute(*args, **options)
        except CommandError as error:
            if not getattr(self, "_called_from_command_line", False) or options.get("traceback"):
                raise
            self.stderr.write(f"manage.py {self.actor.command}: error: {printable(error)}")
            sys.exit(error.returncode)

    def progress(self, done: int, total: int | None = None, *, label: str = "") -> None:
        """A progress line for long runs, on a terminal only (scripts and --json stay clean)."""
        if not self.stderr.isatty():
            return
        prefix = f"{label}: " if label else ""
        if total:
            end = "\n" if done >= total else ""
            self.stderr.write(f"\r  {prefix}{done:,} / {total:,} ({done * 100 // total}%)", ending=end)
        else:
            self.stderr.write(f"\r  {prefix}{done:,}", ending="")
        self.stderr.flush()

    def handle(self, *args, **options):
        self.as_json = options["as_json"]
        try:
            self._refuse_unreadable_arguments(options)
            result = self.run(*args, **options)
        except FlowsError as error:
            raise self._failure(error.as_dict()["error"]) from None
        except CommandError as error:
            code = "usage" if error.returncode == EXIT_USAGE else "refused"
            raise self._failure({"code": code, "message": str(error)}, error.returncode) from None
        except UnicodeDecodeError as error:
            # Every decoding in a command is of its input (stdin, a file): bytes that should have been text.
            message = f"the input is not UTF-8 text (at byte {error.start})"  # never the byte: it may be a secret's
            raise self._failure({"code": "not_utf8", "message": message}) from None
        except OperationalError as error:
            # The server is unreachable or went away: its message (host, port, reason) is what to fix.
            reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
            raise self._failure({"code": "database_unavailable", "message": f"database error: {reason}"}) from None
        except DatabaseError as error:
            # Not the server's text: it can quote the offending value (a secret, a name, a token).
            sqlstate = getattr(error.__cause__, "sqlstate", None) or "unknown"
            message = f"database error ({error.__class__.__name__}, SQLSTATE {sqlstate}); nothing was changed"
            raise self._failure({"code": "database_error", "message": message}) from None
        except Exception as error:
            if options.get("traceback"):
                raise
            # A bug, not bad input: one line for the operator, the details with --traceback.
            log.error("%s failed with %s", self.actor.command, error.__class__.__name__)
            message = f"internal error ({error.__class__.__name__}); re-run with --traceback for details"
            raise self._failure({"code": "internal_error", "message": message}) from None
        if self.as_json:
            self.stdout.write(json.dumps({"ok": True, **result.data}, default=str, sort_keys=True))
        elif result.text:
            lines = [result.text] if result.verbatim else map(printable, result.text.split("\n"))
            self.stdout.write("\n".join(lines))

    def _refuse_unreadable_arguments(self, options) -> None:
        for dest, value in options.items():
            texts = [value] if isinstance(value, str) else value if isinstance(value, list | tuple) else []
            if any(isinstance(text, str) and UNREADABLE.search(text) for text in texts):
                name = self._argument_names.get(dest, dest)
                raise UsageError(f"argument {name}: holds a NUL character or bytes that are not UTF-8 text")

    def _failure(self, error: dict[str, Any], returncode: int = EXIT_REFUSED) -> CommandError:
        """The CommandError to raise for `error` ({"code", "message", …}), its JSON object printed first with --json."""
        if self.as_json:
            self.stdout.write(json.dumps({"ok": False, "error": error}, sort_keys=True))
        return CommandError(error["message"], returncode=returncode)

    def run(self, *args, **options) -> Result:
        raise NotImplementedError
