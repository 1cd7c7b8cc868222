"""manage.py cleanup_invitations: expire overdue invitations and purge finished ones; for cron and timers."""

from config.commands import FlowsCommand, Result, UsageError
from invitations.services import cleanup_invitations


class Command(FlowsCommand):
    help = (
        "Mark overdue pending invitations expired and delete finished ones (accepted, expired, revoked) older than "
        "the retention period, in batches with short transactions. Safe to run twice at once (the second exits 0), "
        "resumes after a kill, records one summary audit event per run. See docs/scheduling.md."
    )
    example = "manage.py cleanup_invitations --retention-days 90 --batch-size 5000"

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would change; change nothing.")
        parser.add_argument("--batch-size", type=int, default=5000, help="Rows per transaction (default 5000).")
        parser.add_argument("--retention-days", type=int, help="Default: FLOWS_INVITATION_RETENTION_DAYS.")

    def run(self, **options):
        if not 1 <= options["batch_size"] <= 100_000:
            raise UsageError("--batch-size must be between 1 and 100000")
        days = options["retention_days"]
        if days is not None and not 0 <= days <= 3650:
            raise UsageError("--retention-days must be between 0 and 3650")
        result = cleanup_invitations(
            actor=self.actor,
            retention_days=days,
            batch_size=options["batch_size"],
            dry_run=options["dry_run"],
            progress=lambda stage, done: self.progress(done, label=stage),
        )
        data = {"expired": result.expired, "purged": result.purged, "dry_run": result.dry_run, "locked": result.locked}
        if result.locked:
            return Result(data, "Another cleanup_invitations run holds the lock; nothing to do.")
        if result.dry_run:
            data |= {"would_expire": result.pending_expiry, "would_purge": result.pending_purge}
            return Result(data, f"Would expire {result.pending_expiry} and purge {result.pending_purge} invitation(s).")
        return Result(data, f"Expired {result.expired} and purged {result.purged} invitation(s).")
