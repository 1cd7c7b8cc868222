"""manage.py export_audit: stream audit events as JSON Lines or CSV on stdout, with the chain fields; audited."""

from __future__ import annotations

from audit.management.commands.verify_audit import parse_since
from audit.services import export_events
from clients.selectors import get_client
from config.commands import FlowsCommand, Result, UsageError


class Command(FlowsCommand):
    help = (
        "Export audit events (all, one client's, or from a date on) on stdout, ordered by chain and seq, as JSON "
        "Lines or CSV, streamed in constant memory. Each line carries the chain fields (seq, prev_hash, hash, key_id, "
        "mac), so `verify_audit --file` can check a JSON Lines export offline. The export itself is recorded in the "
        "audit trail with its filter. See docs/audit.md."
    )
    example = "manage.py export_audit --client acme --since 2026-11-01 --format jsonl > acme-audit.jsonl"

    def add_arguments(self, parser):
        parser.add_argument("--client", help="Only this client's events (code or id).")
        parser.add_argument("--since", help="Only events from this date (2026-11-01) or time on.")
        parser.add_argument("--format", dest="export_format", choices=["jsonl", "csv"], default="jsonl")

    def run(self, **options):
        if self.as_json:
            raise UsageError("export_audit writes the export itself on stdout; --json does not apply")
        since = parse_since(options["since"]) if options["since"] else None
        client = get_client(options["client"]) if options["client"] else None
        counted: list[int] = []
        blocks = export_events(
            actor=self.actor, client=client, since=since, export_format=options["export_format"], copied=counted.append
        )
        lines = 0
        for block in blocks:
            lines += block.count(b"\n")
            self.stdout.write(block.decode(), ending="")
            self.progress(lines, label="lines exported")
        exported = counted[0]
        self.stderr.write(f"{exported} event(s) exported.")
        return Result({"exported": exported})
