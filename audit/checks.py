"""System checks: the audit chain's HMAC keys are present and well-formed (audit.E001), and so is a configured
checkpoint signing key (audit.E002), at start-up rather than on the first write."""

from django.conf import settings
from django.core.checks import Error, register

from audit import keys
from vault.errors import KeyRingError


@register("audit")
def check_audit_keys(app_configs=None, **kwargs):
    errors = []
    try:
        keys.chain_keys()
    except KeyRingError as error:
        errors.append(Error(error.message, id="audit.E001", hint="See docs/audit.md: keys."))
    if settings.FLOWS_AUDIT_SIGNING_KEY or settings.FLOWS_AUDIT_SIGNING_KEY_FILE or settings.FLOWS_AUDIT_PUBLIC_KEYS:
        try:
            keys.public_keys()
        except KeyRingError as error:
            errors.append(Error(error.message, id="audit.E002", hint="See docs/audit.md: checkpoints."))
    return errors
