"""manage.py generate_master_key: print a new master key entry for FLOWS_MASTER_KEYS."""

from config.commands import FlowsCommand, Result
from vault import keyring


class Command(FlowsCommand):
    help = (
        "Print a new master key entry '<id>:<base64>'. Put it first in FLOWS_MASTER_KEYS to make it primary, keep "
        "the old keys after it, then run rotate_keys --master. Nothing is stored or logged."
    )
    example = "manage.py generate_master_key --id mk2027a"

    def add_arguments(self, parser):
        parser.add_argument(
            "--id", dest="key_id", help="The key's id (1-32 letters, digits, '-', '_'; default: dated)."
        )

    def run(self, **options):
        entry = keyring.generate(options["key_id"])
        return Result({"key_id": entry.split(":", 1)[0], "entry": entry}, entry)
