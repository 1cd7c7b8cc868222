"""`record()`: the one way to write an audit event, inside the caller's transaction."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, router, transaction
from django.utils import timezone

from audit.context import current_origin
from audit.models import AuditEvent

PLATFORM_CHAIN = "platform"
GENESIS_HASH = "0" * 64
MASK = "***"
_SENSITIVE = ("password", "secret", "token", "value", "private", "api_key", "credential")


def mask_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Replace values of sensitive-looking fields (at any depth) with a mask; keys stay visible."""
    masked: dict[str, Any] = {}
    for key, value in changes.items():
        if any(word in key.lower() for word in _SENSITIVE):
            masked[key] = MASK
        elif isinstance(value, dict):
            masked[key] = mask_changes(value)
        else:
            masked[key] = value
    return masked


def as_json_values(changes: dict[str, Any]) -> dict[str, Any]:
    """Changes exactly as they will be stored (dates, UUIDs, decimals as JSON strings), so the hash matches."""
    return json.loads(json.dumps(changes, cls=DjangoJSONEncoder))


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`{"field": {"old": …, "new": …}}` for the fields whose value changed."""
    return {key: {"old": old.get(key), "new": new[key]} for key in new if old.get(key) != new[key]}


def actor_fields(actor) -> tuple[str, str, str]:
    """(type, id, label) of whoever acts: None is the system, a staff user, or anything with `audit_principal`."""
    if actor is None:
        return AuditEvent.ActorType.SYSTEM, "", "system"
    if getattr(actor, "is_authenticated", False):
        return AuditEvent.ActorType.USER, str(actor.pk), actor.get_username()
    principal = getattr(actor, "audit_principal", None)
    if principal is not None:
        return principal
    raise TypeError(f"unsupported audit actor: {type(actor).__name__}")


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the event's canonical JSON: editing any field breaks the chain."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def chain_head(using: str, client_id: str | None, chain: str):
    """The chain's last (seq, hash). Filtered on client_id too: the unique index leads with it, and
    without it this lookup is a sequential scan of the whole trail on every write."""
    return (
        AuditEvent.objects.using(using)
        .filter(client_id=client_id, chain=chain)
        .order_by("-seq")
        .values_list("seq", "hash")
    )


def record(
    *,
    actor,
    action: str,
    client=None,
    target=None,
    target_type: str = "",
    target_id: str = "",
    target_label: str = "",
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one audit event in the caller's transaction; raises if there is none (event and change go together)."""
    using = router.db_for_write(AuditEvent)
    if not connections[using].in_atomic_block:
        raise RuntimeError("audit.record() must run inside the transaction of the change it records")
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
        target_label = target_label or str(target)
    actor_type, actor_id, actor_label = actor_fields(actor)
    origin = current_origin()
    occurred_at = timezone.now()
    fields = {
        "occurred_at": occurred_at.isoformat(),
        "client_id": str(client.pk) if client is not None else None,
        "client_code": client.code if client is not None else "",
        "actor_type": str(actor_type),
        "actor_id": actor_id,
        "actor_label": actor_label[:200],
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "target_label": target_label[:200],
        "changes": as_json_values(mask_changes(changes or {})),
        "ip": origin.ip,
        "user_agent": origin.user_agent,
        "request_id": origin.request_id,
    }
    chain = fields["client_id"] or PLATFORM_CHAIN
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        # One lock per chain: writers for different clients never wait on each other.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"audit:{chain}"])
        last = chain_head(using, fields["client_id"], chain).first()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        return AuditEvent.objects.using(using).create(
            **{**fields, "occurred_at": occurred_at},
            chain=chain,
            seq=seq,
            prev_hash=prev_hash,
            hash=event_hash(prev_hash, {**fields, "chain": chain, "seq": seq}),
        )
