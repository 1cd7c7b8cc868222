"""manage.py restore_client: load a client backup into this installation, all or nothing."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.validators import DomainNameValidator

from clients.backup import restore_client
from clients.models import normalise_code, normalise_domain
from clients.selectors import CLIENT_CODE
from config.commands import FlowsCommand, Result, UsageError, printable


class Command(FlowsCommand):
    help = (
        "Restore a client from a backup_client file, in one transaction: the checksum, format version, master keys "
        "and audit chain are checked first; a client that exists is refused. --as-code restores it as a new client "
        "(new id and code), re-keying what is bound to the old one (docs/operations.md#restoring-under-a-new-code). "
        "Runs as the owner (DATABASE_URL). The restore is recorded in the client's audit chain."
    )
    example = (
        "manage.py restore_client acme-2026-11-22.flowsbak --dry-run\n"
        "  manage.py restore_client acme-2026-11-22.flowsbak --as-code acme-restored --domain acme-restored.thepia.net"
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The backup file (backup_client --output).")
        parser.add_argument("--as-code", metavar="CODE", help="Restore as a new client with this code.")
        parser.add_argument("--domain", help="With --as-code: the new client's domain (default: the backup's).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check and load everything, then roll back: nothing changes."
        )

    def run(self, **options):
        as_code, domain = options["as_code"], options["domain"]
        if domain is not None and as_code is None:
            raise UsageError("argument --domain: only with --as-code")
        if as_code is not None:
            as_code = normalise_code(as_code)
            if not CLIENT_CODE.fullmatch(as_code):
                raise UsageError("argument --as-code: a code is 2 to 50 lowercase letters, digits or hyphens")
        if domain is not None:
            domain = normalise_domain(domain)
            try:
                DomainNameValidator(accept_idna=False)(domain)
            except ValidationError:
                raise UsageError(f"argument --domain: {printable(domain)[:100]} is not a host name") from None
        summary = restore_client(
            actor=self.actor,
            path=Path(options["file"]),
            as_code=as_code,
            domain=domain,
            dry_run=options["dry_run"],
            progress=lambda table, done: self.progress(done, label=table),
        )
        data = {
            "client": summary.client,
            "client_id": summary.client_id,
            "source": summary.source,
            "rows": summary.counts,
            "not_restored": summary.skipped,
            "dry_run": summary.dry_run,
            "sha256": summary.sha256,
        }
        verb = "Would restore" if summary.dry_run else "Restored"
        lines = [
            f"{verb} client {summary.client} ({summary.client_id}) from the backup of {summary.source['client']} "
            f"made {summary.source['created_at']}: {sum(summary.counts.values())} rows."
        ]
        lines += [f"  {table}: {count}" for table, count in summary.counts.items()]
        lines += [f"  not restored under a new code: {table}: {count}" for table, count in summary.skipped.items()]
        if summary.dry_run:
            lines.append("Dry run: everything was checked and rolled back; nothing changed.")
        return Result(data, "\n".join(lines))
