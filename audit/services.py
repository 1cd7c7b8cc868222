"""`record()`: the one way to write an audit event, inside the caller's transaction."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, router, transaction
from django.utils import timezone

from audit import keys
from audit.context import current_origin
from audit.fastcheck import canonical_json
from audit.models import HASHED_COLUMNS, AuditEvent, ChainHead, Checkpoint
from audit.selectors import copied_export, export_queryset
from clients.locks import single_run

PLATFORM_CHAIN = "platform"
GENESIS_HASH = "0" * 64
MASK = "***"
# A key names a sensitive value when its last word is one of these, or its last two words one of
# the pairs: `password`, `client_secret`, `api_key`, `privateKey` are masked; `secret_type`,
# `secrets` (a count) and `token_hash` are not.
_SENSITIVE_WORDS = {
    "password", "passwd", "passphrase", "secret", "token", "credential", "credentials", "authorization", "apikey",
}  # fmt: skip
_SENSITIVE_PAIRS = {
    ("api", "key"), ("private", "key"), ("secret", "key"), ("access", "key"), ("signing", "key"), ("secret", "value"),
}  # fmt: skip
# Inside a URL: the password of its user information, and query values under sensitive names.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/@:\s]*):[^/@\s]+@")
_QUERY_PARAMETER = re.compile(r"([?&])([^=&#\s]+)=([^&#\s]*)")
# Values that are credentials whatever their key: an API key, a compact JWS/JWT, a PEM private key,
# an Authorization header value.
_SENSITIVE_VALUE = re.compile(
    r"flk_[0-9a-f]{12}_|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.|-----BEGIN [A-Z ]*PRIVATE KEY-----|^(Bearer|Basic)\s",
    re.IGNORECASE,
)


def _key_words(key: str) -> list[str]:
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower().replace("-", "_").replace(".", "_").split("_")


def is_sensitive_key(key: str) -> bool:
    words = [word for word in _key_words(str(key)) if word]
    return bool(words) and (words[-1] in _SENSITIVE_WORDS or tuple(words[-2:]) in _SENSITIVE_PAIRS)


def _masked_value(value: Any) -> Any:
    if isinstance(value, dict):
        return mask_changes(value)
    if isinstance(value, list | tuple):
        return [_masked_value(item) for item in value]
    if isinstance(value, str):
        if _SENSITIVE_VALUE.search(value):
            return MASK
        if "://" in value:
            value = _URL_PASSWORD.sub(rf"\1:{MASK}@", value)
            value = _QUERY_PARAMETER.sub(lambda m: f"{m[1]}{m[2]}={MASK}" if is_sensitive_key(m[2]) else m[0], value)
    return value


def mask_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Mask what is a secret (at any depth): values under keys that name one, and values that look like one."""
    return {key: MASK if is_sensitive_key(key) else _masked_value(value) for key, value in changes.items()}


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


# json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str), without building an encoder per call
# (verify_audit hashes millions of rows; its COPY walk builds the same bytes, audit/fastcheck.py).
_canonical_json = canonical_json


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the event's canonical JSON: editing any field breaks the chain."""
    return hashlib.sha256(f"{prev_hash}\n{_canonical_json(fields)}".encode()).hexdigest()


def hashed_fields(values: dict[str, Any]) -> dict[str, Any]:
    """What an event's hash covers, from its stored values (record() and verify_audit both use this).

    A keyed event covers its key id; its place in the chain is fixed by the link (`prev_hash`),
    so its `seq` is left out and a renumbering shows as a gap or a reordering, not as an edit of
    every later event. Legacy (unkeyed) events covered their `seq`, and still do.
    """
    fields = {name: values[name] for name in HASHED_COLUMNS}
    fields["occurred_at"] = values["occurred_at"].isoformat()
    fields["client_id"] = None if values["client_id"] is None else str(values["client_id"])
    if values["key_id"]:
        fields["key_id"] = values["key_id"]
    else:
        fields["seq"] = values["seq"]
    return fields


def event_mac(key: bytes, hash_: str) -> str:
    """HMAC-SHA256 of an event's hash: only a holder of the audit key can make one that verifies."""
    return hmac.new(key, hash_.encode(), hashlib.sha256).hexdigest()


def last_event(using: str, client_id: str | None, chain: str):
    """(seq, hash) of the chain's events, newest first. Filtered on client_id too: the unique index
    leads with it, and without it this lookup is a sequential scan of the whole trail."""
    return (
        AuditEvent.objects.using(using)
        .filter(client_id=client_id, chain=chain)
        .order_by("-seq")
        .values_list("seq", "hash")
    )


def _locked_head(using: str, client_id: str | None, chain: str) -> ChainHead:
    """The chain's head row, locked until the caller's transaction ends: appends to one chain queue here.

    A chain without a head row (new, or written before head rows existed) gets one from its last
    event; concurrent first writers both try the insert, one wins, and both then queue on the lock.
    """
    # now(): the transaction's time, the one the insert trigger gives the event (audit/migrations/0005).
    database_now = models.Func(function="now", output_field=models.DateTimeField())
    heads = (
        ChainHead.objects.using(using)
        .select_for_update()
        .filter(client_id=client_id, chain=chain)
        .annotate(database_now=database_now)
    )
    head = heads.first()
    if head is None:
        seq, hash_ = last_event(using, client_id, chain).first() or (0, GENESIS_HASH)
        ChainHead.objects.using(using).bulk_create(
            [ChainHead(client_id=client_id, chain=chain, seq=seq, hash=hash_)], ignore_conflicts=True
        )
        head = heads.get()
    return head


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
    using: str | None = None,
) -> AuditEvent:
    """Write one audit event in the caller's transaction; raises if there is none (event and change go together).

    `using` names the connection of that transaction when it is not the router's (restore_client runs as the owner).
    """
    using = using or router.db_for_write(AuditEvent)
    if not connections[using].in_atomic_block:
        raise RuntimeError("audit.record() must run inside the transaction of the change it records")
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
        target_label = target_label or str(target)
    actor_type, actor_id, actor_label = actor_fields(actor)
    origin = current_origin()
    key = keys.chain_keys().primary
    values = {
        "client_id": str(client.pk) if client is not None else None,
        "client_code": client.code if client is not None else "",
        "actor_type": str(actor_type),
        "actor_id": actor_id[:64],
        "actor_label": actor_label[:200],
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "target_label": target_label[:200],
        "changes": as_json_values(mask_changes(changes or {})),
        "ip": origin.ip,
        "user_agent": origin.user_agent,
        "request_id": origin.request_id,
        "chain": str(client.pk) if client is not None else PLATFORM_CHAIN,
        "key_id": key.id,
    }
    # No savepoint (two round trips on every audited write): a failed audit write fails the whole operation anyway.
    with transaction.atomic(using=using, savepoint=False):
        # One lock per chain, on a row: writers for different clients never wait on each other.
        head = _locked_head(using, values["client_id"], values["chain"])
        values |= {"occurred_at": head.database_now, "seq": head.seq + 1, "prev_hash": head.hash}
        values["hash"] = event_hash(head.hash, hashed_fields(values))
        values["mac"] = event_mac(key.key, values["hash"])
        return AuditEvent.objects.using(using).create(**values)  # its insert moved the head (audit/migrations/0004)


CHECKPOINT_LOCK = "audit_checkpoint"


def checkpoint_message(client_id, chain: str, seq: int, hash_: str, *, signed_at: str, key_id: str) -> bytes:
    """The exact bytes a checkpoint's signature covers (canonical JSON)."""
    body = {"client_id": client_id, "chain": chain, "seq": seq, "hash": hash_, "signed_at": signed_at, "key_id": key_id}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def checkpoint_line(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint as its JSON Lines record: what operators ship outside the database."""
    return {
        "client_id": None if checkpoint.client_id is None else str(checkpoint.client_id),
        "chain": checkpoint.chain,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "signed_at": checkpoint.signed_at.isoformat(),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }


def create_checkpoints(*, actor, client=None) -> list[Checkpoint] | None:
    """Sign every chain's head (or one client's) with the checkpoint key and store the checkpoints; None if another
    run holds the lock.

    The run's own event comes first, in the same transaction, so the platform chain's checkpoint
    covers it. The key is read before anything is written: a missing key changes nothing.
    """
    key = keys.signing_key()
    using = router.db_for_write(Checkpoint)
    with single_run(CHECKPOINT_LOCK) as acquired:
        if not acquired:
            return None
        with transaction.atomic(using=using, durable=True):
            record(actor=actor, action="audit.checkpointed", changes={"client": client.code if client else "all"})
            heads = ChainHead.objects.using(using).order_by("client_id", "chain")
            if client is not None:
                # The platform chain too: it holds this run's own event.
                heads = heads.filter(models.Q(client_id=client.pk) | models.Q(client_id__isnull=True))
            signed_at = timezone.now()
            checkpoints = []
            for head in heads.iterator(chunk_size=5000):
                client_id = None if head.client_id is None else str(head.client_id)
                message = checkpoint_message(
                    client_id, head.chain, head.seq, head.hash, signed_at=signed_at.isoformat(), key_id=key.id
                )
                checkpoints.append(
                    Checkpoint(
                        client_id=head.client_id,
                        chain=head.chain,
                        seq=head.seq,
                        hash=head.hash,
                        signed_at=signed_at,
                        key_id=key.id,
                        signature=key.sign(message),
                    )
                )
            return Checkpoint.objects.using(using).bulk_create(checkpoints, batch_size=1000)


def export_events(*, actor, export_format: str, client=None, since=None, events=None, view: str = "", copied=None):
    """Record the export (who, which filter, which format) in its own committed transaction, then return the
    export to stream, as blocks of UTF-8 text (JSON Lines or CSV, written by PostgreSQL through COPY: see
    audit.selectors.copied_export): an export that is interrupted or fails half-way has still been recorded.

    The command names a client and a start (`client`, `since`); the admin passes the queryset of its
    filtered, scoped view (`events`) and the view's query string (`view`). `copied` is told how many events
    were exported once the stream is done.
    """
    using = router.db_for_write(AuditEvent)
    changes = {"since": since.isoformat() if since else None, "format": export_format}
    if events is not None:
        changes["view"] = view
    with transaction.atomic(using=using, durable=True):
        record(actor=actor, action="audit.exported", client=client, changes=changes)
    if events is None:
        events = export_queryset(client_id=client.pk if client else None, since=since)
    return copied_export(events, export_format, copied=copied)


def record_verification(*, actor, client=None, since=None, resume: bool = False, summary, problems: dict[str, int]):
    """Record one `verify_audit` run over the database: its scope and result, so monitoring can read the last one.

    In the platform's chain, like `audit.checkpointed` (a run is an operation on the trail, and an
    event in the verified client's chain would move what the next run walks), in a transaction of
    its own after the walk. A run that found problems is recorded too: it is the one that matters.
    """
    changes = {
        "scope": client.code if client is not None else "all",
        "ok": not problems,
        "since": since,
        "resume": resume,
        "chains": summary.chains,
        "events": summary.events,
        "checkpoints": summary.checkpoints,
        "problems": dict(sorted(problems.items())),
    }
    with transaction.atomic(using=router.db_for_write(AuditEvent), durable=True):
        return record(
            actor=actor,
            action="audit.verified",
            target_type="audit.chain",
            target_label=client.code if client is not None else "all chains",
            changes=changes,
        )
