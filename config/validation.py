"""Input validation as domain errors: Django's ValidationError and IntegrityError, control characters, JSON text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError

from config.errors import Conflict, InvalidInput


def invalid_input(error: ValidationError) -> InvalidInput:
    fields = error.message_dict if hasattr(error, "error_dict") else {NON_FIELD_ERRORS: error.messages}
    summary = "; ".join(
        message if name == NON_FIELD_ERRORS else f"{name}: {message}"
        for name, messages in fields.items()
        for message in messages
    )
    return InvalidInput(summary, fields=fields)


def full_clean(instance, *, exclude=None) -> None:
    """Validate fields, constraints and uniqueness; raise InvalidInput naming each problem."""
    try:
        instance.full_clean(exclude=exclude)
    except ValidationError as error:
        raise invalid_input(error) from None


@contextmanager
def conflicts_as(message: str) -> Iterator[None]:
    """A unique or foreign-key violation that validation could not see (a concurrent write) becomes Conflict."""
    try:
        yield
    except IntegrityError:
        raise Conflict(message) from None


# Characters that make one value look like several lines, move the cursor, recolour or clear a terminal, or
# reorder what is displayed: C0 and C1 controls (newline, tab, NUL, ESC, DEL, …), the Unicode line and
# paragraph separators, the bidirectional marks, embeddings, overrides and isolates (U+202E and friends), and
# lone surrogates (what Python makes of bytes that are not UTF-8).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
CONTROL_CHARACTERS_MESSAGE = "Remove the control characters (line breaks, tabs, escapes, text direction overrides)."


def refuse_control_characters(**values: str | Iterable[str] | None) -> None:
    """InvalidInput naming each field whose text (or any of whose texts) holds a control character.

    For one-line values people read: names, labels, descriptions, tags, reasons.
    """
    fields = {
        name: [CONTROL_CHARACTERS_MESSAGE]
        for name, value in values.items()
        if value is not None
        and any(CONTROL_CHARACTERS.search(text) for text in ([value] if isinstance(value, str) else value))
    }
    if fields:
        raise InvalidInput(
            "; ".join(f"{name}: {messages[0]}" for name, messages in fields.items()),
            code="control_characters",
            fields=fields,
        )


def parse_json(data: str | bytes, *, source: str) -> Any:
    """JSON text as Python values; InvalidInput naming `source` for text that is not JSON, not UTF-8 or too deep.

    Python's parser raises RecursionError, not a JSON error, on a few thousand nested brackets.
    """
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"{source} is not valid JSON: {error.msg} (line {error.lineno})", code="invalid_json"
        ) from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{source} is not UTF-8 text.", code="invalid_json") from None
    except RecursionError:
        raise InvalidInput(f"{source} is nested too deeply to be read.", code="invalid_json") from None


def nesting_depth(value: Any) -> int:
    """How many levels of lists and objects `value` has (a scalar is 1), counted without recursion."""
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
    return depth
