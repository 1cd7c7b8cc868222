"""manage.py backup_client: one client's rows in every tenant table, in one checksummed file."""

import sys
from pathlib import Path

from clients.backup import backup_to_file, write_backup
from clients.selectors import get_client
from config.commands import FlowsCommand, Result, UsageError, printable


class Command(FlowsCommand):
    help = (
        "Write a client's backup: every row of the client in every tenant table (applications, API keys, "
        "invitations, data keys still wrapped, secrets still encrypted, the secret access log, its audit chain) "
        "as one versioned, checksummed file (docs/operations.md#per-client-backup). Reads through the console "
        "role in one snapshot, streamed; needs no master key. The backup is recorded in the audit trail. The file "
        "is written under a temporary name and renamed when complete; '-' writes to stdout."
    )
    example = "manage.py backup_client acme --output acme-2026-11-22.flowsbak"

    def add_arguments(self, parser):
        self.add_client_argument(parser)
        parser.add_argument(
            "--output", required=True, metavar="FILE", help="A new file to write (never overwritten), or - for stdout."
        )

    def run(self, **options):
        output = options["output"]
        if output == "-" and self.as_json:
            raise UsageError("--json and --output - both want stdout: write the backup to a file with --json")
        if not output.strip():
            raise UsageError("argument --output: give a file name, or - for stdout")
        client = get_client(options["client"])
        if output == "-":
            self.stdout.flush()
            stream = getattr(self.stdout, "buffer", None) or sys.stdout.buffer
            summary = write_backup(actor=self.actor, client=client, out=stream)  # flushed, or refused
            self.stderr.write(f"backup of {client.code}: {sum(summary.counts.values())} rows, sha256 {summary.sha256}")
            return Result()
        summary = backup_to_file(actor=self.actor, client=client, path=Path(output))
        rows = sum(summary.counts.values())
        data = {
            "client": summary.client,
            "output": output,
            "rows": summary.counts,
            "bytes": summary.bytes,
            "sha256": summary.sha256,
            "erased": summary.erased,
        }
        lines = [f"Wrote the backup of {summary.client} to {printable(output)}: {rows} rows, {summary.bytes} bytes."]
        lines += [f"  {table}: {count}" for table, count in summary.counts.items()]
        lines.append(f"sha256 {summary.sha256}")
        if summary.erased:
            lines.append("The client is erased: its data keys are destroyed, so the backup holds no usable secret.")
        return Result(data, "\n".join(lines))
