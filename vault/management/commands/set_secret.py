"""manage.py set_secret: store or replace one of a client's secrets; the value comes from stdin, a file or a prompt."""

import base64
import binascii
import getpass
import sys
from datetime import timedelta

from django.utils import timezone

from clients.selectors import get_client
from config.commands import FlowsCommand, Result, UsageError
from config.errors import InvalidInput, excerpt
from vault.models import Secret
from vault.selectors import value_as_text
from vault.services import MAX_SECRET_BYTES, set_secret

# Read no more than this: base64 and its line breaks make a value about a third longer.
MAX_INPUT_BYTES = 2 * MAX_SECRET_BYTES


def secret_data(secret: Secret) -> dict:
    """A secret's metadata for output. Never its value or ciphertext."""
    return {
        "id": str(secret.pk),
        "client": secret.client.code,
        "name": secret.name,
        "provider": secret.provider,
        "secret_type": secret.secret_type,
        "description": secret.description,
        "tags": secret.tags,
        "is_active": secret.is_active,
        "data_key_version": secret.data_key_version,
        "expires_at": secret.expires_at.isoformat() if secret.expires_at else None,
        "last_used_at": secret.last_used_at.isoformat() if secret.last_used_at else None,
        "usage_count": secret.usage_count,
    }


class Command(FlowsCommand):
    help = (
        "Store a client's secret for a provider and type, or replace its value. The value is read from stdin "
        "(or a hidden prompt on a terminal) or from --file, never from an argument, so it stays out of shell history "
        "and ps. One trailing newline of a text value is dropped (echo and editors add it); a binary value (a DER "
        "certificate, a keystore) is stored byte for byte. With --base64 the value is read base64-encoded."
    )
    example = (
        "manage.py set_secret acme --provider slack --type api_key --tag chat < slack-token.txt\n"
        "  manage.py set_secret acme --provider okta --type certificate --file okta-signing.der"
    )

    def add_arguments(self, parser):
        self.add_client_argument(parser)
        parser.add_argument("--provider", required=True, help="e.g. slack, stripe, workday.")
        parser.add_argument("--type", dest="secret_type", required=True, choices=Secret.Type.values)
        parser.add_argument("--name", help="Unique within the client (default: <provider>-<type>).")
        parser.add_argument("--description", help="What it is for.")
        parser.add_argument("--tag", dest="tags", action="append", help="Repeat for each tag.")
        parser.add_argument("--expires-in-days", type=int, help="Days until the secret expires (default: never).")
        parser.add_argument("--file", metavar="PATH", help="Read the value from this file instead of stdin.")
        parser.add_argument(
            "--base64",
            action="store_true",
            help="The value is base64-encoded (on stdin or in --file): store its bytes.",
        )

    def run(self, **options):
        days = options["expires_in_days"]
        if days is not None and not 1 <= days <= 3650:
            raise UsageError("--expires-in-days must be between 1 and 3650")
        client = get_client(options["client"])
        secret = set_secret(
            actor=self.actor,
            client=client,
            provider=options["provider"],
            secret_type=options["secret_type"],
            value=self._read_value(options),
            name=options["name"],
            **self._given_metadata(options),
        )
        return Result({"secret": secret_data(secret)}, f"Secret {secret.name} of {client.code} is stored.")

    def _given_metadata(self, options) -> dict:
        """Only what was given on the command line: replacing a value keeps the rest as it is."""
        metadata = {"description": options["description"], "tags": options["tags"]}
        if options["expires_in_days"]:
            metadata["expires_at"] = timezone.now() + timedelta(days=options["expires_in_days"])
        return {name: value for name, value in metadata.items() if value is not None}

    def _read_value(self, options) -> bytes:
        if options["file"] is not None:
            try:
                with open(options["file"], "rb") as file:
                    data = file.read(MAX_INPUT_BYTES + 1)
            except OSError as error:
                raise InvalidInput(
                    f"Cannot read {excerpt(options['file'], limit=300)}: {error.strerror}.", code="unreadable"
                ) from None
        elif sys.stdin.isatty():
            data = getpass.getpass("Value (input hidden): ").encode()
        else:
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        if len(data) > MAX_INPUT_BYTES:
            raise InvalidInput(f"The secret's value is larger than {MAX_SECRET_BYTES} bytes.", code="value_too_large")
        if options["base64"]:
            try:
                return base64.b64decode(b"".join(data.split()), validate=True)
            except binascii.Error:
                raise InvalidInput("The value is not valid base64.", code="invalid_base64") from None
        if data.endswith(b"\n") and value_as_text(data) is not None:
            return data[:-1]  # `echo` adds one newline to text; a binary value keeps every byte
        return data
