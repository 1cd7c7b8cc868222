"""The documented shape of an application's `configuration` (JSON Schema) and its validation."""

from __future__ import annotations

import json

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
    },
}

_validator = Draft202012Validator(APPLICATION_CONFIGURATION_SCHEMA)


def configuration_errors(configuration) -> list[str]:
    """Every way `configuration` departs from the schema, as `configuration.path: message` lines."""
    if nesting_depth(configuration) > MAX_CONFIGURATION_DEPTH:
        return [f"configuration: nested deeper than {MAX_CONFIGURATION_DEPTH} levels"]
    if len(json.dumps(configuration)) > MAX_CONFIGURATION_BYTES:
        return [f"configuration: larger than {MAX_CONFIGURATION_BYTES} bytes"]
    errors = sorted(_validator.iter_errors(configuration), key=lambda error: list(map(str, error.absolute_path)))
    return [".".join(["configuration", *map(str, error.absolute_path)]) + f": {error.message}" for error in errors]
