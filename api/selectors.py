"""Reads of the tenant API: a page of invitations (keyset), usage per month and summaries."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Q, Sum
from django.utils import timezone

from api.models import Usage
from config.errors import InvalidInput
from invitations.models import Invitation

PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


def _invalid_cursor() -> InvalidInput:
    return InvalidInput(
        "The cursor is not one this API returned.", code="invalid_cursor", fields={"cursor": ["Invalid."]}
    )


def encode_cursor(invitation: Invitation) -> str:
    payload = json.dumps([invitation.created_at.isoformat(), str(invitation.pk)], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor continues after; InvalidInput (invalid_cursor) for anything else."""
    try:
        created_at, invitation_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = datetime.fromisoformat(created_at), uuid.UUID(invitation_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise _invalid_cursor() from None
    if position[0].tzinfo is None:
        raise _invalid_cursor()
    return position


@dataclass(frozen=True)
class InvitationPage:
    items: list[Invitation]
    next_cursor: str | None


def invitation_page(
    *,
    client_id: uuid.UUID,
    application_id: uuid.UUID | None = None,
    app_code: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> InvitationPage:
    """Newest first, in a stable order (created_at, then id), continuing after `cursor`: no OFFSET, no COUNT."""
    queryset = Invitation.objects.filter(client_id=client_id).select_related("application")
    if application_id is not None:
        queryset = queryset.filter(application_id=application_id)
    if app_code:
        queryset = queryset.filter(application__app_code=app_code)
    if status:
        queryset = queryset.filter(status=status)
    if cursor:
        created_at, invitation_id = decode_cursor(cursor)
        queryset = queryset.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=invitation_id))
    items = list(queryset.order_by("-created_at", "-id")[: limit + 1])
    more = len(items) > limit
    items = items[:limit]
    return InvitationPage(items, encode_cursor(items[-1]) if more else None)


def month_bounds(month: str) -> tuple[date, date]:
    """'2026-11' → (2026-11-01, 2026-12-01); InvalidInput otherwise."""
    try:
        start = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise InvalidInput(f"Give the month as YYYY-MM, not '{month}'.", code="invalid_month") from None
    end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start, end


def usage_rows(client_id: uuid.UUID, start: date, end: date) -> list[dict]:
    """Every counter of the client between two days (end excluded), by day, application, key, endpoint and class.

    Counters at 0 are left out: a request that failed moved its provisional 2xx count (api.metering)."""
    return list(
        Usage.objects.filter(client_id=client_id, day__gte=start, day__lt=end, count__gt=0)
        .order_by("day", "api_key_id", "endpoint", "status_class")
        .values("day", "application_id", "api_key_id", "endpoint", "status_class", "count")
    )


def usage_by_class(*, client_id: uuid.UUID, api_key_id: uuid.UUID | None = None, since: date | None = None) -> dict:
    """Requests per status class ({'2xx': n, …}) of a client or one of its keys, this month unless `since` says."""
    since = since or timezone.now().date().replace(day=1)
    queryset = Usage.objects.filter(client_id=client_id, day__gte=since)
    if api_key_id is not None:
        queryset = queryset.filter(api_key_id=api_key_id)
    totals = dict(queryset.values_list("status_class").annotate(total=Sum("count")).order_by())
    return {status_class: totals.get(status_class, 0) for status_class in Usage.StatusClass.values}


def usage_by_key(*, client_id: uuid.UUID, since: date | None = None) -> dict[uuid.UUID, dict[str, int]]:
    """Requests per key and status class of a client, this month unless `since` says: one query for all its keys."""
    since = since or timezone.now().date().replace(day=1)
    rows = (
        Usage.objects.filter(client_id=client_id, day__gte=since)
        .values_list("api_key_id", "status_class")
        .annotate(total=Sum("count"))
        .order_by()
    )
    usage: dict[uuid.UUID, dict[str, int]] = {}
    for api_key_id, status_class, total in rows:
        usage.setdefault(api_key_id, dict.fromkeys(Usage.StatusClass.values, 0))[status_class] = total
    return usage
