"""manage.py reveal_secret: print one secret's value, with a reason that is recorded."""

import base64
import os

from clients.selectors import get_client
from config.commands import FlowsCommand, Result, printable
from config.errors import InvalidInput, excerpt
from vault.selectors import get_secret, value_as_text
from vault.services import reveal_secret


class Command(FlowsCommand):
    help = (
        "Print a secret's value on stdout (nothing else, so it can be piped). The reason, the operator and the time "
        "are recorded in the secret access log and the audit trail. A binary value goes to a pipe or a file as its "
        "bytes; on a terminal it is printed base64-encoded, with a note on stderr."
    )
    example = (
        'manage.py reveal_secret acme slack-api_key --reason "re-registering the Slack app, ticket 4411"\n'
        '  manage.py reveal_secret acme okta-certificate --reason "ticket 4412" --output okta-signing.der'
    )

    def add_arguments(self, parser):
        self.add_client_argument(parser)
        parser.add_argument("secret", help="The secret's name or id.")
        parser.add_argument("--reason", required=True, help="Why the value is needed (recorded).")
        parser.add_argument("--base64", action="store_true", help="Print the value base64-encoded.")
        parser.add_argument(
            "--output", metavar="FILE", help="Write the value's bytes to FILE (a new file, readable by you only)."
        )

    def run(self, **options):
        secret = get_secret(get_client(options["client"]), options["secret"])
        # The file is created before the value is revealed: a path that cannot be written is refused unrevealed.
        output = self._create(options["output"]) if options["output"] is not None else None
        try:
            value = reveal_secret(actor=self.actor, secret=secret, reason=options["reason"])
        except BaseException:
            if output is not None:
                os.close(output)
                os.unlink(options["output"])
            raise
        if output is not None:
            with os.fdopen(output, "wb") as file:
                file.write(value)
            data = {"name": secret.name, "output": options["output"], "bytes": len(value)}
            text = f"Wrote the value of {secret.name} ({len(value)} bytes) to {printable(options['output'])}."
            return Result(data, text)
        text = value_as_text(value)
        if text is not None and not options["base64"]:
            return Result({"name": secret.name, "encoding": "utf-8", "value": text}, text, verbatim=True)
        encoded = base64.b64encode(value).decode()
        if options["base64"] or self.as_json:
            return Result({"name": secret.name, "encoding": "base64", "value": encoded}, encoded, verbatim=True)
        stream = getattr(self.stdout, "buffer", None)
        if self.stdout.isatty() or stream is None:
            note = (
                f"{secret.name} is binary ({len(value)} bytes): printed base64-encoded; --output FILE writes its bytes."
            )
            self.stderr.write(note)  # bytes would garble a terminal
            return Result({}, encoded, verbatim=True)
        self.stdout.flush()
        stream.write(value)
        stream.flush()
        return Result()

    def _create(self, path: str) -> int:
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            raise InvalidInput(
                f"Cannot create {excerpt(path, limit=300)}: {error.strerror}.", code="unwritable"
            ) from None
