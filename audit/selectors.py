"""Reads of the audit trail that are more than a one-liner: events in chain order, streamed; the changelist's reads."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connections
from django.db.models import CharField, Value
from django.db.models.functions import Cast

from audit.models import HASHED_COLUMNS, KNOWN_ACTIONS, AuditEvent
from config.routers import read_alias

CHAIN_FIELDS = ("id", "seq", "prev_hash", "hash", "key_id", "mac")
# Every column verification needs, in the order exports carry them.
EVENT_FIELDS = (*CHAIN_FIELDS, *HASHED_COLUMNS)
# Rows per round trip of a server-side cursor.
CHUNK_SIZE = 5000


def exported_value(name: str, value: Any) -> Any:
    """A stored value as an export carries it: exactly what verify_audit --file hashes again."""
    if name == "occurred_at":
        return value.isoformat()
    if name == "client_id":
        return None if value is None else str(value)
    return value


def events_in_chain_order(*, client_id=None, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every event (or one client's, or from `since` on) by chain, then seq: the unique index's order, streamed
    through a server-side cursor in chunks, so memory stays constant whatever the trail's size. Read from the
    replica when one is configured (an export is a long read; its own event was written on `console` before)."""
    events = AuditEvent.objects.using(read_alias())
    if client_id is not None:
        events = events.filter(client_id=client_id)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    return exported_rows(events)


def exported_rows(events) -> Iterator[dict[str, Any]]:
    """The events of a queryset (e.g. the admin's filtered view), by chain then seq, as exports carry them."""
    rows = events.order_by("client_id", "chain", "seq").values_list(*EVENT_FIELDS)
    for values in rows.iterator(chunk_size=CHUNK_SIZE):
        yield {name: exported_value(name, value) for name, value in zip(EVENT_FIELDS, values, strict=True)}


# Bytes of COPY output per block written to the client (a file, a response).
EXPORT_BLOCK = 1 << 16
# The export's text, produced by PostgreSQL. JSON Lines: one object per event, its keys in sorted order (as
# json.dumps(sort_keys=True) wrote them), `occurred_at` as JSON writes a timestamp (ISO 8601, UTC on Django's
# connections), `changes` as the stored JSON. CSV: EVENT_FIELDS' columns under a header, `changes` as JSON text.
_EXPORT_JSON = "json_build_object({})::text".format(", ".join(f"'{name}', e.{name}" for name in sorted(EVENT_FIELDS)))
_EXPORT_CSV = ", ".join(
    f"to_json(e.{name}) #>> '{{}}' AS {name}" if name == "occurred_at" else f"e.{name}" for name in EVENT_FIELDS
)
# JSON text has no raw control characters: with these two as delimiter and quote, CSV mode writes each line as it is
# (text mode would double every backslash).
_EXPORT_FORMATS = {
    "jsonl": (_EXPORT_JSON, "FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01'"),
    "csv": (_EXPORT_CSV, "FORMAT csv, HEADER"),
}


def export_queryset(*, client_id=None, since: datetime | None = None):
    """Every event (or one client's, or from `since` on), from the replica when one is configured (an export is a
    long read; its own event was written on `console` before)."""
    events = AuditEvent.objects.using(read_alias())
    if client_id is not None:
        events = events.filter(client_id=client_id)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    return events


def copy_blocks(copy, size: int) -> Iterator[bytes]:
    """What a `COPY … TO STDOUT` sends, one message a row, gathered into blocks of whole lines of about `size`
    bytes, each joined once."""
    rows, gathered = [], 0
    for data in copy:
        rows.append(data)
        gathered += len(data)
        if gathered >= size:
            yield b"".join(rows)
            rows, gathered = [], 0
    if rows:
        yield b"".join(rows)


def copied_export(events, export_format: str, *, copied: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The export of a queryset (the command's filter, or the admin's filtered and scoped view) by chain then seq,
    as JSON Lines or CSV text written by PostgreSQL through COPY, in blocks of whole lines (UTF-8). The queryset's
    own SQL is the inner query: its filters and scoping apply unchanged."""
    select, options = _EXPORT_FORMATS[export_format]
    inner = events.order_by("client_id", "chain", "seq").values_list(*EVENT_FIELDS)
    sql, params = inner.query.get_compiler(using=inner.db).as_sql()
    statement = f"COPY (SELECT {select} FROM ({sql}) AS e ORDER BY e.client_id, e.chain, e.seq) TO STDOUT ({options})"  # noqa: S608
    with connections[inner.db].cursor() as cursor:
        with cursor.cursor.copy(statement, params or None) as copy:
            yield from copy_blocks(copy, EXPORT_BLOCK)
        if copied is not None:
            copied(cursor.cursor.rowcount)  # the events COPY wrote (a CSV line may hold a line break)


# --- Browsing (the audit changelist) -------------------------------------------------------------

# Routine staff sign-in events: kept in the trail, hidden from the changelist unless asked for.
# Failed second factors, lockouts and elevation failures stay visible: they are what an
# investigator looks for.
SIGN_IN_ACTIONS = ("staff.login", "staff.logout", "staff.login_failed", "staff.elevated")
# Action groups of the changelist's filter, by the action's prefix (sign-ins apart from the rest of staff).
ACTION_GROUP_PREFIXES = {
    "clients": ("client.",),
    "applications": ("application.",),
    "API": ("api_key.",),
    "vault": ("vault.", "data_key.", "secret.", "signing_key."),
    "invitations": ("invitation.",),
    "staff": ("staff.",),
    "sign-ins": (),
    "audit": ("audit.",),
}


def action_group(action: str) -> str | None:
    """The changelist group of an action (None for one no group's prefix covers)."""
    if action in SIGN_IN_ACTIONS:
        return "sign-ins"
    return next((group for group, prefixes in ACTION_GROUP_PREFIXES.items() if action.startswith(prefixes)), None)


def actions_in_group(group: str) -> list[str]:
    return [action for action in KNOWN_ACTIONS if action_group(action) == group]


def planner_estimate(queryset) -> int:
    """The planner's estimate of a queryset's rows (one EXPLAIN, nothing executed): never a COUNT(*) over millions."""
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def chain_neighbours(event: AuditEvent, *, using: str) -> tuple[AuditEvent | None, AuditEvent | None]:
    """The events before and after `event` in its chain (one query, on the chain's unique index)."""
    around = AuditEvent.objects.using(using).filter(
        client_id=event.client_id, chain=event.chain, seq__in=[event.seq - 1, event.seq + 1]
    )
    by_seq = {neighbour.seq: neighbour for neighbour in around}
    return by_seq.get(event.seq - 1), by_seq.get(event.seq + 1)


def existing_targets(targets: list[tuple[str, str]], *, linkable: set[str], using: str) -> set[tuple[str, str]]:
    """Which of (target_type, target_id) still exist, for the types in `linkable`: one UNION query for a whole page."""
    ids: dict[str, set] = {}
    for label, target_id in targets:
        if label not in linkable or not target_id:
            continue
        model = apps.get_model(label)
        try:
            ids.setdefault(label, set()).add(model._meta.pk.to_python(target_id))
        except ValidationError:
            continue
    parts = [
        apps.get_model(label)
        ._default_manager.using(using)
        .order_by()
        .filter(pk__in=values)
        .annotate(target_type=Value(label, output_field=CharField()), target_id=Cast("pk", CharField()))
        .values_list("target_type", "target_id")
        for label, values in sorted(ids.items())
    ]
    if not parts:
        return set()
    return set(parts[0].union(*parts[1:], all=True)) if len(parts) > 1 else set(parts[0])
