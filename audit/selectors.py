"""Reads of the audit trail that are more than a one-liner: events in chain order, streamed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from audit.models import HASHED_COLUMNS, AuditEvent

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
    through a server-side cursor in chunks, so memory stays constant whatever the trail's size."""
    events = AuditEvent.objects.all()
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
