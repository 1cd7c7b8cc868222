"""manage.py generate_audit_key: print a new audit chain key (HMAC) or checkpoint signing key (Ed25519)."""

from audit import keys
from config.commands import FlowsCommand, Result


class Command(FlowsCommand):
    help = (
        "Print a new audit chain key entry '<id>:<base64>' for FLOWS_AUDIT_KEYS (put it first, keep the old ones "
        "after it: old events stay verifiable), or with --signing a checkpoint signing key for "
        "FLOWS_AUDIT_SIGNING_KEY and its public half for FLOWS_AUDIT_PUBLIC_KEYS. Nothing is stored or logged."
    )
    example = "manage.py generate_audit_key --signing --id ck2027a"

    def add_arguments(self, parser):
        parser.add_argument("--signing", action="store_true", help="An Ed25519 checkpoint signing key instead.")
        parser.add_argument(
            "--id", dest="key_id", help="The key's id (1-32 letters, digits, '-', '_'; default: dated)."
        )

    def run(self, **options):
        if not options["signing"]:
            entry = keys.generate_chain_key(options["key_id"])
            return Result({"key_id": entry.split(":", 1)[0], "entry": entry}, entry)
        private, public = keys.generate_signing_key(options["key_id"])
        key_id = private.split(":", 1)[0]
        text = f"FLOWS_AUDIT_SIGNING_KEY={private}\nFLOWS_AUDIT_PUBLIC_KEYS entry (keep after rotation): {public}"
        return Result({"key_id": key_id, "entry": private, "public": public}, text)
