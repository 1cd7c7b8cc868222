"""The base class of every Flows Console command: --json, exit codes 0/1/2, examples in --help, --client lookup.

Subclasses implement `run(**options)` and return a `Result`; they raise domain errors
(`config.errors.FlowsError`) for refused or invalid operations, which become exit code 1 with a
one-line reason on stderr (and, with --json, an error object on stdout). Usage errors exit 2.
"""

from __future__ import annotations

import getpass
import json
import logging
import sys
from argparse import RawDescriptionHelpFormatter
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from config.errors import FlowsError

log = logging.getLogger(__name__)

EXIT_REFUSED = 1
EXIT_USAGE = 2


@dataclass
class Result:
    """What a command did: `data` for --json, `text` for people."""

    data: dict[str, Any] = field(default_factory=dict)
    text: str = ""


@dataclass(frozen=True)
class CommandActor:
    """Who acts when an operator runs a command: recorded in the audit trail as `manage.py <name> (<os user>)`."""

    command: str

    @property
    def audit_principal(self) -> tuple[str, str, str]:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return "system", user, f"manage.py {self.command} ({user})"


class UsageError(CommandError):
    def __init__(self, message: str):
        super().__init__(message, returncode=EXIT_USAGE)


class FlowsCommand(BaseCommand):
    example: str = ""
    requires_system_checks: list = []  # `manage.py check --database` and health_check cover them

    def create_parser(self, prog_name, subcommand, **kwargs):
        epilog = f"Example:\n  {self.example}" if self.example else None
        parser = super().create_parser(
            prog_name, subcommand, formatter_class=RawDescriptionHelpFormatter, epilog=epilog, **kwargs
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print one JSON object on stdout.")
        return parser

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
            self.stderr.write(f"manage.py {self.actor.command}: error: {error}")
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
            result = self.run(*args, **options)
        except FlowsError as error:
            if self.as_json:
                self.stdout.write(json.dumps({"ok": False, **error.as_dict()}))
            raise CommandError(error.message, returncode=EXIT_REFUSED) from None
        except DatabaseError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
            raise CommandError(f"database error: {reason}", returncode=EXIT_REFUSED) from None
        except CommandError:
            raise
        except Exception as error:
            if options.get("traceback"):
                raise
            # A bug, not bad input: one line for the operator, the details with --traceback.
            log.error("%s failed with %s", self.actor.command, error.__class__.__name__)
            raise CommandError(
                f"internal error ({error.__class__.__name__}); re-run with --traceback for details",
                returncode=EXIT_REFUSED,
            ) from None
        if self.as_json:
            self.stdout.write(json.dumps({"ok": True, **result.data}, default=str, sort_keys=True))
        elif result.text:
            self.stdout.write(result.text)

    def run(self, *args, **options) -> Result:
        raise NotImplementedError
