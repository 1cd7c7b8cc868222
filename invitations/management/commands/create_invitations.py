"""manage.py create_invitations: issue a CSV file's invitations for one client, all checked first, in one batch."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from clients.selectors import get_client
from config.commands import FlowsCommand, Result
from config.errors import InvalidInput
from invitations.bulk import MAX_CSV_BYTES, errors_text, links_csv, read_csv
from invitations.delivery import SEND_TO_CHOICES
from invitations.services import issue_invitations


def read_input(path: str) -> bytes:
    """The file's bytes (`-`: standard input), refusing more than MAX_CSV_BYTES without reading it all."""
    try:
        if path == "-":
            return sys.stdin.buffer.read(MAX_CSV_BYTES + 1)
        with Path(path).open("rb") as file:
            return file.read(MAX_CSV_BYTES + 1)
    except OSError as error:
        message = f"Cannot read --csv: {error.strerror or error.__class__.__name__}."
        raise InvalidInput(message, code="csv_unreadable") from None


def write_output(path: str, text: str) -> None:
    """A new file readable by its owner only: it holds live invitation links. Never overwrites one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise InvalidInput(
            f"Cannot create --output: {error.strerror or error.__class__.__name__} (it must not exist yet).",
            code="output_unwritable",
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
        file.write(text)


class Command(FlowsCommand):
    help = (
        "Issue invitations from a CSV file for one client. Columns: name, company_email, application (required), "
        "private_email, permissions, validity (12h … 30d, default 7d). Every row is checked first; with any invalid "
        "row nothing is issued (the report lists line, field and reason) unless --valid-only. The links are printed "
        "once as CSV (or written to --output): they are not stored."
    )
    example = (
        "manage.py create_invitations --client acme --csv new-hires.csv --send company --output links.csv\n"
        "  manage.py create_invitations --client acme --csv new-hires.csv --dry-run --json"
    )

    def add_arguments(self, parser):
        self.add_client_argument(parser, positional=False)
        parser.add_argument(
            "--csv", required=True, help="The CSV file (UTF-8, at most 1 MiB, 2,000 rows); - for stdin."
        )
        send_help = "E-mail each link to the company address, the private one, both, or none (default)."
        parser.add_argument("--send", choices=list(SEND_TO_CHOICES), default="none", help=send_help)
        parser.add_argument("--dry-run", action="store_true", help="Check every row; issue nothing.")
        parser.add_argument("--valid-only", action="store_true", help="Issue the valid rows even if others are not.")
        parser.add_argument("--output", help="Write the links CSV to this new file (mode 600) instead of stdout.")

    def run(self, **options):
        client = get_client(options["client"])
        requests, unreadable = read_csv(read_input(options["csv"]))
        dry_run, valid_only = options["dry_run"], options["valid_only"]
        result = issue_invitations(
            actor=self.actor, client=client, requests=requests, unreadable=unreadable, valid_only=valid_only,
            dry_run=dry_run, send_to=options["send"],
        )  # fmt: skip
        report = errors_text(result.errors)
        refused = result.batch_error or (result.errors and not valid_only) or not result.valid_rows
        if refused:
            self._refuse(result, report, dry_run=dry_run, valid_only=valid_only)
        errors = [{"line": e.line, "field": e.field, "reason": e.reason} for e in result.errors]
        issued = [_issued(i, with_link=not options["output"]) for i in result.issued]
        data = {"client": client.code, "rows": result.rows, "valid_rows": result.valid_rows, "dry_run": dry_run,
                "errors": errors, "issued": issued}  # fmt: skip
        skipped = [f"skipped {line}" for line in report]
        if dry_run:
            return Result(
                data, "\n".join([*skipped, f"Dry run: {result.valid_rows} of {result.rows} row(s) can be issued."])
            )
        lines = [*skipped, f"Issued {len(result.issued)} invitation(s) for {client.code}."]
        if (delivery := result.delivery) is not None:
            data["delivery"] = {"status": delivery.status, "sent": delivery.sent, "failed": delivery.failed,
                                "error": delivery.error}  # fmt: skip
            failed = f" ({delivery.error}): resend {', '.join(delivery.failed)}" if delivery.failed else ""
            lines.append(f"E-mail to {delivery.to_label}: {delivery.sent} sent, {len(delivery.failed)} failed{failed}.")
        links = links_csv(result, requests)
        if options["output"]:
            write_output(options["output"], links)
            return Result(data, "\n".join([*lines, f"Links written to {options['output']} (shown once, not stored)."]))
        return Result(data, "\n".join([*lines, "Links (shown once, not stored):", links.rstrip("\r\n")]))

    def _refuse(self, result, report: list[str], *, dry_run: bool, valid_only: bool):
        """Exit 1: the report (line, field, reason) is the output; stderr carries the one-line refusal."""
        if not self.as_json:
            self.stdout.write("\n".join(report))
        verdict = "nothing would be issued" if dry_run else "nothing was issued"
        hint = "" if result.batch_error or valid_only or not result.valid_rows else " (--valid-only issues the rest)"
        raise InvalidInput(
            f"{len(result.errors)} problem(s) in {result.rows} row(s); {verdict}{hint}",
            code="invalid_rows",
            fields={f"line {e.line}": [f"{e.field}: {e.reason}" if e.field else e.reason] for e in result.errors},
        )


def _issued(issued, *, with_link: bool) -> dict:
    data = {"line": issued.line, "code": issued.invitation.code, "application": issued.invitation.application.app_code,
            "expires_at": issued.invitation.expires_at.isoformat()}  # fmt: skip
    if with_link:
        data |= {"link": issued.link, "token": issued.token}
    return data
