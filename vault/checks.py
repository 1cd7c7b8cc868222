"""System checks: the master key ring is present and well-formed (vault.E001), at start-up rather than on first use."""

from django.core.checks import Error, register

from vault import keyring
from vault.errors import KeyRingError


@register("vault")
def check_master_keys(app_configs=None, **kwargs):
    try:
        keyring.load()
    except KeyRingError as error:
        return [Error(error.message, id="vault.E001", hint="See docs/vault.md: master keys.")]
    return []
