"""manage.py verify_audit: walk the audit chains (or an export); name each edited, deleted, inserted or forged event."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

from audit import verification
from audit.services import record_verification
from clients.selectors import get_client
from config.commands import FlowsCommand, Result, UsageError, printable
from config.errors import FlowsError, InvalidInput

# Problem lines kept for --json, per kind: the count is always exact, the list an excerpt.
JSON_PROBLEMS_PER_KIND = 100


class Tampered(FlowsError):
    code = "audit_trail_not_intact"


def parse_since(text: str) -> datetime:
    """A date (midnight UTC) or an ISO 8601 date and time; UsageError otherwise."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time.min, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError("--since takes a date (2026-11-01) or an ISO 8601 date and time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def open_text(path: str, option: str):
    try:
        return Path(path).open(encoding="utf-8")
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or "not a readable path"
        raise InvalidInput(f"{option} {printable(path)[:200]}: cannot be read ({reason})") from None


class Command(FlowsCommand):
    help = (
        "Verify the audit trail: walk each chain (every client's and the platform's) in order and report, one line "
        "per problem with the event id, every edited, deleted, inserted, reordered or forged event and every broken "
        "link. With --checkpoints, also compare with signed checkpoints (audit_checkpoint's stream), which catches a "
        "chain rewritten consistently. With --file, verify an export (export_audit --format jsonl) offline. "
        "A run over the database is recorded as an audit.verified event (its result, for /metrics), unless "
        "the --checkpoints stream has lines that are no trusted checkpoint. "
        "Exit 0 when intact, 1 otherwise. See docs/audit.md."
    )
    example = "manage.py verify_audit --client acme --since 2026-11-01 --checkpoints /var/lib/flows/checkpoints.jsonl"

    def add_arguments(self, parser):
        parser.add_argument("--client", help="Only this client's chain (code or id).")
        parser.add_argument("--since", help="Only events from this date (2026-11-01) or time on.")
        parser.add_argument("--checkpoints", metavar="PATH", help="Signed checkpoints (JSON Lines) to check against.")
        parser.add_argument(
            "--resume",
            action="store_true",
            help="Start each chain after its newest checkpoint in the database whose signature verifies.",
        )
        parser.add_argument("--file", metavar="PATH", help="Verify this export (JSON Lines) instead of the database.")

    def run(self, **options):
        if options["file"] and (options["client"] or options["since"] or options["resume"] or options["checkpoints"]):
            raise UsageError(
                "--file verifies an export on its own: it takes no --client, --since, --resume or --checkpoints"
            )
        since = parse_since(options["since"]) if options["since"] else None
        counts: dict[str, int] = {}
        kept: dict[str, list[str]] = {}

        def emit(problem: verification.Problem) -> None:
            counts[problem.kind] = counts.get(problem.kind, 0) + 1
            if self.as_json:
                if counts[problem.kind] <= JSON_PROBLEMS_PER_KIND:
                    kept.setdefault(problem.kind, []).append(problem.line())
            else:
                self.stdout.write(printable(problem.line()))

        if options["file"]:
            with open_text(options["file"], "--file") as lines:
                summary = verification.verify_export(lines, emit=emit)
        else:
            client = get_client(options["client"]) if options["client"] else None
            checkpoints = None
            if options["checkpoints"]:
                with open_text(options["checkpoints"], "--checkpoints") as lines:
                    checkpoints = verification.read_checkpoints(lines, emit=emit)
            stream_problems = sum(counts.values())  # lines of the given stream that are no trusted checkpoint
            summary = verification.verify_database(
                client_id=client.pk if client is not None else None,
                since=since,
                checkpoints=checkpoints,
                resume=options["resume"],
                emit=emit,
                progress=lambda done: self.progress(done, label="events verified"),
            )
            # The result of a run over the database goes into the trail: /metrics reports the last one.
            # Not when the stream given had lines that are no trusted checkpoint: that result says
            # more of the file than of the trail, and refused input changes nothing.
            if not stream_problems:
                record_verification(
                    actor=self.actor,
                    client=client,
                    since=since,
                    resume=options["resume"],
                    summary=summary,
                    problems=counts,
                )
        data = {
            "chains": summary.chains,
            "events": summary.events,
            "legacy_unkeyed": summary.legacy_unkeyed,
            "checkpoints": summary.checkpoints,
        }
        if counts:
            found = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))
            raise Tampered(
                f"the audit trail is not intact: {found} in {summary.events} event(s) of {summary.chains} chain(s)",
                fields=kept,
            )
        legacy = f" ({summary.legacy_unkeyed} legacy, unkeyed)" if summary.legacy_unkeyed else ""
        checked = f", {summary.checkpoints} checkpoint(s) matched" if summary.checkpoints else ""
        return Result(data, f"Intact: {summary.events} event(s){legacy} in {summary.chains} chain(s){checked}.")
