"""The documented shape of an application's `configuration` (JSON Schema) and its validation."""

from __future__ import annotations

import json
import re

from jsonschema import Draft202012Validator

from config.validation import nesting_depth

MAX_CONFIGURATION_BYTES = 16_384
MAX_CONFIGURATION_DEPTH = 8  # the schema nests 4 levels; deeper is never valid, and deep enough is a RecursionError
_HTTPS_URL = {"type": "string", "pattern": r"^https://[^\s]+$", "maxLength": 500}

APPLICATION_CONFIGURATION_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "locale": {"type": "string", "pattern": r"^[a-z]{2}(-[A-Z]{2})?$"},
        "timezone": {"type": "string", "pattern": r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", "maxLength": 64},
        "branding": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "display_name": {"type": "string", "minLength": 1, "maxLength": 100},
                "primary_color": {"type": "string", "pattern": r"^#[0-9a-fA-F]{6}$"},
                "logo_url": _HTTPS_URL,
            },
        },
        "notifications": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "email": {"type": "boolean"},
                "reminder_days": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": 90},
                    "maxItems": 10,
                    "uniqueItems": True,
                },
            },
        },
        "workflow": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "steps": {
                    "type": "array",
                    "items": {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,49}$"},
                    "maxItems": 50,
                    "uniqueItems": True,
                },
                "approval_required": {"type": "boolean"},
            },
        },
        "webhook_url": _HTTPS_URL,
        # The invitation e-mail (invitations/delivery.py): plain text with {placeholders}, see EMAIL_PLACEHOLDERS.
        "invitation_email": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "subject": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\r\n]*$"},
                "body": {"type": "string", "minLength": 1, "maxLength": 10_000},
            },
        },
    },
}

# What an invitation e-mail's subject and body may name, e.g. "Welcome to {application_name}, {invitee_name}".
# Only these names: the text is filled by `fill_placeholders`, never by str.format (which would reach attributes).
EMAIL_PLACEHOLDERS = {
    "invitee_name": "the invitee's full name",
    "client_name": "the client's legal name",
    "application_name": "the application's display name (branding) or name",
    "link": "the invitation link (body only)",
    "expires_at": "when the invitation expires (UTC)",
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_placeholders(text: str, values: dict[str, str]) -> str:
    """`text` with each `{name}` of EMAIL_PLACEHOLDERS replaced by its value; any other text stays as it is."""
    return _PLACEHOLDER.sub(lambda match: values.get(match[1], match[0]), text)


def _email_template_errors(configuration) -> list[str]:
    email = configuration.get("invitation_email") if isinstance(configuration, dict) else None
    if not isinstance(email, dict):
        return []
    errors = []
    for part in ("subject", "body"):
        text = email.get(part)
        if not isinstance(text, str):
            continue
        unknown = sorted({name for name in _PLACEHOLDER.findall(text) if name not in EMAIL_PLACEHOLDERS})
        if unknown:
            known = ", ".join(f"{{{name}}}" for name in EMAIL_PLACEHOLDERS)
            errors.append(
                f"configuration.invitation_email.{part}: unknown placeholder(s) "
                + ", ".join(f"{{{name}}}" for name in unknown)
                + f"; use {known}"
            )
    if isinstance(email.get("subject"), str) and "{link}" in email["subject"]:
        errors.append("configuration.invitation_email.subject: the link belongs in the body, not the subject")
    if isinstance(email.get("body"), str) and "{link}" not in email["body"]:
        errors.append("configuration.invitation_email.body: must contain {link}, or the invitee cannot accept")
    return errors


_validator = Draft202012Validator(APPLICATION_CONFIGURATION_SCHEMA)


def configuration_errors(configuration) -> list[str]:
    """Every way `configuration` departs from the schema, as `configuration.path: message` lines."""
    if nesting_depth(configuration) > MAX_CONFIGURATION_DEPTH:
        return [f"configuration: nested deeper than {MAX_CONFIGURATION_DEPTH} levels"]
    if len(json.dumps(configuration)) > MAX_CONFIGURATION_BYTES:
        return [f"configuration: larger than {MAX_CONFIGURATION_BYTES} bytes"]
    errors = sorted(_validator.iter_errors(configuration), key=lambda error: list(map(str, error.absolute_path)))
    messages = [".".join(["configuration", *map(str, error.absolute_path)]) + f": {error.message}" for error in errors]
    return messages or _email_template_errors(configuration)
