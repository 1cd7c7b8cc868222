"""manage.py reveal_secret: print one secret's value, with a reason that is recorded."""

from clients.selectors import get_client
from config.commands import FlowsCommand, Result
from vault.selectors import get_secret
from vault.services import reveal_secret


class Command(FlowsCommand):
    help = (
        "Print a secret's value on stdout (nothing else, so it can be piped). The reason, the operator and the time "
        "are recorded in the secret access log and the audit trail."
    )
    example = 'manage.py reveal_secret acme slack-api_key --reason "re-registering the Slack app, ticket 4411"'

    def add_arguments(self, parser):
        self.add_client_argument(parser)
        parser.add_argument("secret", help="The secret's name or id.")
        parser.add_argument("--reason", required=True, help="Why the value is needed (recorded).")

    def run(self, **options):
        secret = get_secret(get_client(options["client"]), options["secret"])
        value = reveal_secret(actor=self.actor, secret=secret, reason=options["reason"])
        return Result({"name": secret.name, "value": value}, value)
