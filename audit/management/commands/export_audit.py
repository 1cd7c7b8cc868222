"""manage.py export_audit: stream audit events as JSON Lines or CSV on stdout, with the chain fields; audited."""

from __future__ import annotations

import csv
import io
import json

from audit.management.commands.verify_audit import parse_since
from audit.selectors import EVENT_FIELDS
from audit.services import export_events
from clients.selectors import get_client
from config.commands import FlowsCommand, Result, UsageError

# Rows per write to stdout: large enough to keep writes few, small enough for constant memory.
ROWS_PER_WRITE = 1000


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
        events = export_events(actor=self.actor, client=client, since=since, export_format=options["export_format"])
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EVENT_FIELDS) if options["export_format"] == "csv" else None
        if writer:
            writer.writeheader()
        exported = 0
        for exported, event in enumerate(events, start=1):
            if writer:
                writer.writerow({**event, "changes": json.dumps(event["changes"], sort_keys=True)})
            else:
                buffer.write(json.dumps(event, sort_keys=True) + "\n")
            if exported % ROWS_PER_WRITE == 0:
                self.stdout.write(buffer.getvalue(), ending="")
                buffer.seek(0)
                buffer.truncate()
                self.progress(exported, label="events exported")
        self.stdout.write(buffer.getvalue(), ending="")
        self.stderr.write(f"{exported} event(s) exported.")
        return Result({"exported": exported})
