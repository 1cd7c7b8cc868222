"""manage.py audit_checkpoint: sign every audit chain's head and write the checkpoints to the database and a stream."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from audit.services import checkpoint_line, create_checkpoints
from clients.selectors import get_client
from config.commands import FlowsCommand, Result, printable
from config.errors import InvalidInput


def append_lines(directory: str, lines: list[str]) -> Path:
    """Append to this month's file in `directory` (created 0640), flushed to disk before the command reports success."""
    path = Path(directory) / f"audit-checkpoints-{datetime.now(UTC):%Y-%m}.jsonl"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        with os.fdopen(descriptor, "a", encoding="utf-8") as stream:
            stream.write("".join(f"{line}\n" for line in lines))
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as error:
        raise InvalidInput(
            f"{path}: cannot be written ({error.strerror}); the checkpoints are in the database"
        ) from None
    return path


def is_directory(path: str) -> bool:
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):  # a name too long for the file system is no directory either
        return False


class Command(FlowsCommand):
    help = (
        "Sign the head (seq, hash) of every audit chain with the Ed25519 key in FLOWS_AUDIT_SIGNING_KEY[_FILE], store "
        "the checkpoints, and print them as JSON Lines (or append them to a monthly file in --output-dir) for shipping "
        "outside the database; verify_audit --checkpoints checks against them. Run it on a schedule (hourly); a "
        "second run at the same time exits 0 doing nothing. See docs/audit.md."
    )
    example = "manage.py audit_checkpoint --output-dir /var/lib/flows/audit-checkpoints"

    def add_arguments(self, parser):
        parser.add_argument("--client", help="Only this client's chain (and the platform chain).")
        parser.add_argument("--output-dir", metavar="DIR", help="Append to DIR/audit-checkpoints-YYYY-MM.jsonl.")

    def run(self, **options):
        if options["output_dir"] and not is_directory(options["output_dir"]):
            raise InvalidInput(f"--output-dir {printable(options['output_dir'])[:200]}: not an existing directory")
        client = get_client(options["client"]) if options["client"] else None
        checkpoints = create_checkpoints(actor=self.actor, client=client)
        if checkpoints is None:
            return Result({"checkpoints": 0, "locked": True}, "Another audit_checkpoint run holds the lock.")
        records = [checkpoint_line(checkpoint) for checkpoint in checkpoints]
        lines = [json.dumps(record, sort_keys=True) for record in records]
        data = {"checkpoints": len(records), "locked": False}
        if options["output_dir"]:
            path = append_lines(options["output_dir"], lines)
            return Result(data | {"file": str(path)}, f"{len(lines)} checkpoint(s) appended to {path}.")
        return Result(data | {"lines": records}, "\n".join(lines))
