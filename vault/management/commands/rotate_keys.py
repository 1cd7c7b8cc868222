"""manage.py rotate_keys: a client's new data key version, re-wrapping under a new master key, or retiring one."""

from clients.selectors import get_client
from config.commands import FlowsCommand, Result, UsageError
from vault.services import create_data_key, retire_master_key, rotate_master_key


class Command(FlowsCommand):
    help = (
        "Rotate keys without losing data. --client: a new data key version for the client (old versions keep "
        "decrypting; run rewrap to move values forward). --master: re-wrap every data key and signing key under "
        "the primary master key (no value is re-encrypted). --retire-master ID: confirm nothing depends on that "
        "master key any more, so it can leave FLOWS_MASTER_KEYS; refused with the count otherwise."
    )
    example = "manage.py rotate_keys --client acme"

    def add_arguments(self, parser):
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--client", help="The client's code or id.")
        what.add_argument("--master", action="store_true", help="Re-wrap everything under the primary master key.")
        what.add_argument("--retire-master", metavar="ID", help="A master key id to retire.")
        parser.add_argument("--batch-size", type=int, default=200, help="Keys per transaction with --master.")

    def run(self, **options):
        # `is not None`: an empty --client '' is a client that does not exist, not the absence of --client.
        if options["client"] is not None:
            key = create_data_key(actor=self.actor, client=get_client(options["client"]))
            text = f"Client {key.client.code} now encrypts with data key v{key.version}; run rewrap to move values."
            return Result({"client": key.client.code, "version": key.version}, text)
        if options["master"]:
            if not 1 <= options["batch_size"] <= 10_000:
                raise UsageError("--batch-size must be between 1 and 10000")
            result = rotate_master_key(actor=self.actor, batch_size=options["batch_size"], progress=self.progress)
            text = (
                f"Re-wrapped {result['data_keys']} data key(s) and {result['signing_keys']} signing key(s) "
                f"under master key {result['primary']}."
            )
            return Result(result, text)
        result = retire_master_key(actor=self.actor, key_id=options["retire_master"])
        text = f"Nothing depends on master key {result['key_id']}: remove it from FLOWS_MASTER_KEYS."
        return Result(result, text)
