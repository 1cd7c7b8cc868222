"""manage.py rewrap: re-encrypt secrets under their client's newest data key version, batched and resumable."""

from clients.selectors import get_client
from config.commands import FlowsCommand, Result, UsageError
from vault.services import rewrap


class Command(FlowsCommand):
    help = (
        "Re-encrypt every secret still under an older data key version. One transaction per batch: a run that is "
        "killed leaves every value readable, and running it again finishes the rest. --dry-run only counts."
    )
    example = "manage.py rewrap --client acme --batch-size 500"

    def add_arguments(self, parser):
        parser.add_argument("--client", help="Only this client (code or id); default: every client.")
        parser.add_argument("--batch-size", type=int, default=500, help="Secrets per transaction (default 500).")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be re-encrypted; change nothing.")

    def run(self, **options):
        if not 1 <= options["batch_size"] <= 10_000:
            raise UsageError("--batch-size must be between 1 and 10000")
        client = get_client(options["client"]) if options["client"] else None
        result = rewrap(
            actor=self.actor,
            client=client,
            batch_size=options["batch_size"],
            dry_run=options["dry_run"],
            progress=self.progress,
        )
        if result["dry_run"]:
            text = f"{result['pending']} secret(s) would be re-encrypted."
        else:
            text = f"Re-encrypted {result['rewrapped']} secret(s); {result['pending']} left."
        return Result(result, text)
