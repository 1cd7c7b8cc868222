"""manage.py rotate_signing_key: a new active token signing key; the old one stays published until its tokens expire."""

from config.commands import FlowsCommand, Result
from vault.services import rotate_signing_key


class Command(FlowsCommand):
    help = (
        "Create a new active Ed25519 signing key for invitation tokens. The previous key stops signing and stays "
        "in /.well-known/jwks.json for FLOWS_TOKEN_MAX_LIFETIME_DAYS, until every token it signed has expired."
    )
    example = "manage.py rotate_signing_key"

    def run(self, **options):
        key = rotate_signing_key(actor=self.actor)
        return Result({"kid": key.kid, "status": key.status}, f"Signing key {key.kid} is active.")
