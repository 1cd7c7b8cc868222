"""The documented shape of an application's `configuration` (JSON Schema) and its validation."""

from __future__ import annotations

import json
import re

from jsonschema import Draft202012Validator

from config.validation import nesting_depth

MAX_CONFIGURATION_BYTES = 16_384
MAX_CONFIGURATION_DEPTH = 8  # the schema nests 4 levels; deeper is never valid, and deep enough is a RecursionError
_HTTPS_URL = {"type": "string", "pattern": r"^https://[^\s]+$", "maxLength": 500}
_URL_RULE = "an https:// address, at most 500 characters"

# Each property's "description" is the rule in people's words: the admin's help lists them and
# every validation error quotes the rule of the key it is about (docs/applications.md has the same table).
APPLICATION_CONFIGURATION_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "locale": {"type": "string", "pattern": r"^[a-z]{2}(-[A-Z]{2})?$", "description": "xx or xx-YY, e.g. en-GB"},
        "timezone": {
            "type": "string",
            "pattern": r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$",
            "maxLength": 64,
            "description": "an IANA time zone name, e.g. Europe/Copenhagen",
        },
        "branding": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "display_name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 100,
                    "description": "1 to 100 characters",
                },
                "primary_color": {
                    "type": "string",
                    "pattern": r"^#[0-9a-fA-F]{6}$",
                    "description": "a colour written #rrggbb, e.g. #0a7cff",
                },
                "logo_url": {**_HTTPS_URL, "description": _URL_RULE},
            },
        },
        "notifications": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "email": {"type": "boolean", "description": "true or false: send e-mail notifications"},
                "reminder_days": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": 90},
                    "maxItems": 10,
                    "uniqueItems": True,
                    "description": "a list of at most 10 different whole numbers of days, each 1 to 90, e.g. [1, 3, 7]",
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
                    "description": "a list of at most 50 different step names (lowercase letters, digits and _, "
                    'starting with a letter), e.g. ["return_equipment", "exit_interview"]',
                },
                "approval_required": {"type": "boolean", "description": "true or false"},
            },
        },
        "webhook_url": {**_HTTPS_URL, "description": _URL_RULE},
        # The invitation e-mail (invitations/delivery.py): plain text with {placeholders}, see EMAIL_PLACEHOLDERS.
        "invitation_email": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "subject": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "pattern": r"^[^\r\n]*$",
                    "description": "one line of 1 to 200 characters; may name {invitee_name}, {client_name}, "
                    "{application_name}, {expires_at}",
                },
                "body": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 10_000,
                    "description": "plain text of up to 10,000 characters that must contain {link}; may also "
                    "name {invitee_name}, {client_name}, {application_name}, {expires_at}",
                },
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


_JSON_TYPES = {
    "object": "an object {…}",
    "array": "a list […]",
    "string": "a text in quotes",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", int: "integer", float: "number"}.get(type(value), "value")


def _got(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"


def _property_schema(path: list) -> dict | None:
    """The schema of the property at `path`, list indexes skipped (an item is judged by its list's rule)."""
    schema = APPLICATION_CONFIGURATION_SCHEMA
    for part in path:
        if isinstance(part, int):
            continue
        schema = schema.get("properties", {}).get(part)
        if schema is None:
            return None
    return schema


def _message(error) -> str:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        unknown = ", ".join(sorted(set(error.instance) - set(error.schema.get("properties", {}))))
        allowed = ", ".join(error.schema.get("properties", {}))
        return f"unknown key {unknown}; the keys allowed here are {allowed}"
    if error.validator == "type":
        expected = error.validator_value
        return f"must be {_JSON_TYPES.get(expected, expected)}, not {_JSON_TYPES[_json_type(error.instance)]}"
    rule = (_property_schema(path) or {}).get("description")
    if rule:
        where = f" (item {path[-1] + 1})" if path and isinstance(path[-1], int) else ""
        return f"must be {rule}; got {_got(error.instance)}{where}"
    return error.message


def allowed_keys() -> list[tuple[str, str]]:
    """Every key the configuration may hold, as (dotted path, rule): for help texts and documentation."""

    def walk(schema: dict, prefix: str):
        for name, child in schema.get("properties", {}).items():
            if child.get("type") == "object":
                yield from walk(child, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", child.get("description", "")

    return list(walk(APPLICATION_CONFIGURATION_SCHEMA, ""))


def configuration_errors(configuration) -> list[str]:
    """Every way `configuration` departs from the schema, as `configuration.path: message` lines, in people's words."""
    if nesting_depth(configuration) > MAX_CONFIGURATION_DEPTH:
        return [f"configuration: nested deeper than {MAX_CONFIGURATION_DEPTH} levels"]
    if len(json.dumps(configuration)) > MAX_CONFIGURATION_BYTES:
        return [f"configuration: larger than {MAX_CONFIGURATION_BYTES} bytes"]
    errors = sorted(_validator.iter_errors(configuration), key=lambda error: list(map(str, error.absolute_path)))
    messages = [
        ".".join(["configuration", *(str(part) for part in error.absolute_path if not isinstance(part, int))])
        + f": {_message(error)}"
        for error in errors
    ]
    return messages or _email_template_errors(configuration)
