"""Every write of the vault: data keys, master-key rotation, rewrap, secrets and their access log, signing keys.

Each function validates, writes and records its audit event in one transaction (bulk work: one
transaction per batch, each with its event, so a killed run leaves only finished batches behind).
Values are never passed to `record()` unmasked and never logged.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import F
from django.utils import timezone

from audit.context import current_origin
from audit.services import actor_fields, diff, record
from clients.models import Client
from clients.selectors import get_client
from config.errors import Forbidden, InvalidInput, NotFound, Refused, excerpt
from config.validation import conflicts_as, full_clean, refuse_control_characters
from vault import keyring, signing
from vault.keys import data_key_context, new_data_key, unwrap, wrap
from vault.models import DataKey, Secret, SecretAccess, SigningKey
from vault.selectors import client_keys, is_erased, secrets_on_old_versions

MAX_SECRET_BYTES = 65_536
MAX_REASON_LENGTH = 500  # what the secret access log keeps


class Unchanged(enum.Enum):
    """Marks an optional argument the caller did not give (None can be a value: no expiry)."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED
SECRET_PURPOSE = "secret"  # noqa: S105 - the associated-data label of secret values, not a password
Progress = Callable[[int, int], None]


def _atomic():
    # Staff work runs on `console`; inside tenant_context (a Flows application using its secret) on `tenant`.
    return transaction.atomic(using=router.db_for_write(Secret))


# --- Data keys -----------------------------------------------------------------------------------


def create_data_key(*, actor, client: Client) -> DataKey:
    """A new data key version for the client, made active; older versions keep decrypting (`previous`)."""
    with _atomic():
        client = get_client(str(client.pk), for_update=True)
        key = add_data_key_version(client)
        record(
            actor=actor,
            action="data_key.created",
            client=client,
            target=key,
            target_label=f"{client.code} data key v{key.version}",
            changes={"version": key.version, "master_key_id": key.master_key_id},
        )
    return key


def add_data_key_version(client: Client) -> DataKey:
    """The next data key version of a client, active, the older ones `previous`. Not a service: the caller
    holds the client's row lock and records the one event of its operation (`create_data_key`,
    `clients.services.create_client`), naming the version."""
    if is_erased(client):
        raise Refused(f"Client {client.code} was erased; it gets no new data keys.", code="client_erased")
    last = DataKey.objects.filter(client_id=client.pk).order_by("-version").values_list("version", flat=True).first()
    version = (last or 0) + 1
    DataKey.objects.filter(client_id=client.pk, status=DataKey.Status.ACTIVE).update(status=DataKey.Status.PREVIOUS)
    wrapped, master_key_id = wrap(new_data_key(), data_key_context(client.pk, version))
    return DataKey.objects.create(client=client, version=version, wrapped_key=wrapped, master_key_id=master_key_id)


def shred_data_keys(client: Client) -> int:
    """Crypto-shredding: remove every wrapped data key of the client and deactivate its secrets; the number
    of versions destroyed. Not a service: `clients.services.erase_client` holds the client's row lock,
    has checked it is not erased yet, and records the operation's one event."""
    now = timezone.now()
    destroyed = DataKey.objects.filter(client_id=client.pk).update(
        status=DataKey.Status.DESTROYED, wrapped_key=None, destroyed_at=now
    )
    if not destroyed:
        # A client that never had a data key still needs the mark that it was erased.
        DataKey.objects.create(
            client=client, version=1, status=DataKey.Status.DESTROYED, wrapped_key=None, destroyed_at=now
        )
    Secret.objects.filter(client_id=client.pk, is_active=True).update(is_active=False)
    return destroyed


def rotate_master_key(*, actor, batch_size: int = 200, progress: Progress | None = None) -> dict[str, Any]:
    """Re-wrap every data key and signing key not yet under the primary master key. Values are untouched.

    Batched, one transaction per batch; re-running picks up what is left.
    """
    primary = keyring.load().primary.id
    remaining = _wrapped_elsewhere(primary)
    total = sum(queryset.count() for queryset in remaining)
    done = {"data_keys": 0, "signing_keys": 0}
    for kind, queryset in zip(done, remaining, strict=True):
        while True:
            with _atomic():
                batch = list(queryset.select_for_update(skip_locked=True)[:batch_size])
                if not batch:
                    break
                for row in batch:
                    _rewrap_row(row)
                type(batch[0]).objects.bulk_update(batch, [_wrapped_field(batch[0]), "master_key_id"])
                done[kind] += len(batch)
                record(
                    actor=actor,
                    action="vault.master_key_rotated",
                    target_type="vault.masterkey",
                    target_id=primary,
                    target_label=f"master key {primary}",
                    changes={kind: len(batch)},
                )
            if progress:
                progress(sum(done.values()), total)
    return {"primary": primary, **done}


def _wrapped_elsewhere(primary: str):
    return (
        DataKey.objects.exclude(status=DataKey.Status.DESTROYED).exclude(master_key_id=primary).order_by("id"),
        SigningKey.objects.exclude(master_key_id=primary).order_by("id"),
    )


def _wrapped_field(row) -> str:
    return "wrapped_key" if isinstance(row, DataKey) else "wrapped_private_key"


def _rewrap_row(row) -> None:
    if isinstance(row, DataKey):
        context = data_key_context(row.client_id, row.version)
        raw = unwrap(bytes(row.wrapped_key), context, what=f"Data key v{row.version} of client {row.client_id}")
        row.wrapped_key, row.master_key_id = wrap(raw, context)
    else:
        context = signing.private_key_context(row.kid)
        raw = unwrap(bytes(row.wrapped_private_key), context, what=f"Signing key {row.kid}")
        row.wrapped_private_key, row.master_key_id = wrap(raw, context)


def retire_master_key(*, actor, key_id: str) -> dict[str, Any]:
    """Confirm nothing depends on master key `key_id` any more, so it can leave the key ring; refused otherwise.

    An id that is neither in the ring nor named by any key is refused too: there is nothing to retire,
    and an event saying otherwise would mislead whoever reads the trail.
    """
    if not keyring.KEY_ID.match(key_id or ""):
        raise InvalidInput(
            f"'{excerpt(key_id)}' is not a master key id (1-32 letters, digits, '-' or '_').",
            code="invalid_key_id",
            fields={"key_id": ["1-32 letters, digits, '-' or '_'."]},
        )
    ring = keyring.load()
    if key_id == ring.primary.id:
        raise Refused(
            f"Master key '{key_id}' is the primary; put a new key first in the ring and rotate.", code="primary"
        )
    data_keys = DataKey.objects.exclude(status=DataKey.Status.DESTROYED).filter(master_key_id=key_id).count()
    signing_keys = SigningKey.objects.filter(master_key_id=key_id).count()
    if data_keys or signing_keys:
        raise Refused(
            f"Master key '{key_id}' still wraps {data_keys} data key(s) and {signing_keys} signing key(s); "
            "run rotate_keys --master first.",
            code="master_key_in_use",
        )
    if key_id not in ring.ids:
        raise NotFound(
            f"Master key '{key_id}' is not in the key ring and wraps nothing: there is nothing to retire "
            f"(the ring holds: {', '.join(ring.ids)}).",
            code="unknown_master_key",
        )
    with _atomic():
        record(
            actor=actor,
            action="vault.master_key_retired",
            target_type="vault.masterkey",
            target_id=key_id,
            target_label=f"master key {key_id}",
        )
    return {"key_id": key_id}


def rewrap(
    *,
    actor,
    client: Client | None = None,
    batch_size: int = 500,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Re-encrypt secrets under their client's active data key version, batch by batch.

    Each batch is one transaction with its audit event, so a run killed halfway leaves every
    value readable (old versions still decrypt) and re-running finishes the rest.
    """
    pending = secrets_on_old_versions(client)
    total = pending.count()
    if dry_run or not total:
        return {"pending": total, "rewrapped": 0, "dry_run": dry_run}
    done = 0
    client_ids = list(pending.order_by().values_list("client_id", flat=True).distinct())
    for client_id in client_ids:
        owner = Client.objects.get(pk=client_id)
        keys = client_keys(owner)
        while True:
            with _atomic():
                # The active version is known here: a plain range on the (client, data_key_version) index.
                batch = list(
                    Secret.objects.filter(client_id=owner.pk, data_key_version__lt=keys.active_version)
                    .select_for_update(skip_locked=True)
                    .order_by()
                    .only("id", "ciphertext")[:batch_size]
                )
                if not batch:
                    break
                rows = []
                for secret in batch:
                    record_id = str(secret.pk)
                    value = keys.decrypt(bytes(secret.ciphertext), purpose=SECRET_PURPOSE, record_id=record_id)
                    rows.append((*keys.encrypt(value, purpose=SECRET_PURPOSE, record_id=record_id), secret.pk))
                _store_ciphertexts(rows)
                record(
                    actor=actor,
                    action="secret.rewrapped",
                    client=owner,
                    target=owner,
                    changes={"secrets": len(batch), "to_version": keys.active_version},
                )
                done += len(batch)
            if progress:
                progress(done, total)
    return {"pending": total - done, "rewrapped": done, "dry_run": False}


def _store_ciphertexts(rows: list[tuple[bytes, int, object]]) -> None:
    """(ciphertext, data key version, secret id) rows, written by one UPDATE over unnest()ed arrays.

    Not `bulk_update()`: it compiles a CASE expression over the whole batch; with it rewrap moved
    about 1,700 secrets/s, with this about 7,000/s on the same machine (bench/vault.py).
    """
    ciphertexts, versions, ids = zip(*rows, strict=True)
    table = Secret._meta.db_table
    with connections[router.db_for_write(Secret)].cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS secret SET ciphertext = new.ciphertext, data_key_version = new.version "  # noqa: S608
            "FROM unnest(%s::uuid[], %s::bytea[], %s::integer[]) AS new(id, ciphertext, version) "
            "WHERE secret.id = new.id",
            [list(ids), list(ciphertexts), list(versions)],
        )


# --- Secrets -------------------------------------------------------------------------------------


def _log_access(*, actor, secret: Secret, access_type: str, reason: str = "") -> None:
    actor_type, actor_id, actor_label = actor_fields(actor)
    origin = current_origin()
    SecretAccess.objects.create(
        client_id=secret.client_id,
        secret_id=secret.pk,
        secret_name=secret.name,
        access_type=access_type,
        actor_type=actor_type,
        actor_id=actor_id,
        actor_label=actor_label[:200],
        reason=reason[:500],
        ip=origin.ip,
        user_agent=origin.user_agent,
    )


def _encoded_value(value: str | bytes | None) -> bytes:
    """The bytes to store: a text value as UTF-8, a binary one (a DER certificate, a keystore) as it is."""
    if not isinstance(value, str | bytes) or not value:
        raise InvalidInput(
            "The secret's value is empty.", code="empty_value", fields={"value": ["This field is required."]}
        )
    try:
        encoded = value.encode() if isinstance(value, str) else value
    except UnicodeEncodeError:
        raise InvalidInput(
            "The secret's value is text that is not valid Unicode; give it as bytes.",
            code="invalid_value",
            fields={"value": ["Not valid Unicode text."]},
        ) from None
    if len(encoded) > MAX_SECRET_BYTES:
        raise InvalidInput(f"The secret's value is larger than {MAX_SECRET_BYTES} bytes.", code="value_too_large")
    return encoded


def set_secret(
    *,
    actor,
    client: Client,
    provider: str,
    secret_type: str,
    value: str | bytes | None,
    name: str | None = None,
    description: str | Unchanged = UNCHANGED,
    tags: list[str] | Unchanged = UNCHANGED,
    expires_at: datetime | Unchanged | None = UNCHANGED,
    is_active: bool | Unchanged = UNCHANGED,
) -> Secret:
    """Create the client's secret for (provider, type), or replace its value and the metadata given.

    `value=None` keeps the stored value; metadata left `UNCHANGED` keeps its current (or default) value.
    The value is bytes or text (stored as UTF-8); it is never checked for control characters, only its labels are.
    """
    refuse_control_characters(
        provider=provider,
        secret_type=secret_type,
        name=name,
        description=None if description is UNCHANGED else description,
        tags=None if tags is UNCHANGED else tags,
    )
    provider = (provider or "").strip().lower()
    secret_type = (secret_type or "").strip().lower()
    with _atomic():
        client = get_client(str(client.pk), for_update=True)
        if client.status == Client.Status.DEACTIVATED:
            raise Refused(f"Client {client.code} is deactivated; reactivate it first.", code="client_deactivated")
        secret = Secret.objects.filter(client_id=client.pk, provider=provider, secret_type=secret_type).first()
        creating = secret is None
        if creating:
            _encoded_value(value)  # a new secret needs a value
            secret = Secret(
                client=client, provider=provider, secret_type=secret_type, name=name or f"{provider}-{secret_type}"
            )
        before = {} if creating else _secret_snapshot(secret)
        if name is not None and not creating:
            secret.name = name
        secret.name = secret.name.strip().lower()
        if description is not UNCHANGED:
            secret.description = (description or "").strip()
        if tags is not UNCHANGED:
            secret.tags = sorted({tag.strip().lower() for tag in tags or [] if tag.strip()})
        if expires_at is not UNCHANGED:
            secret.expires_at = expires_at
        if is_active is not UNCHANGED:
            secret.is_active = is_active
        if value is not None:
            encoded = _encoded_value(value)
            keys = client_keys(client)
            if keys.active_version is None:  # a client from before the vault: its first data key, now
                create_data_key(actor=actor, client=client)
                keys = client_keys(client)
            secret.ciphertext, secret.data_key_version = keys.encrypt(
                encoded, purpose=SECRET_PURPOSE, record_id=str(secret.pk)
            )
        full_clean(secret, exclude=["ciphertext", "data_key_version"])
        changes = diff(before, _secret_snapshot(secret))
        if value is not None:
            changes["value"] = "replaced" if not creating else "set"  # what happened to it; never the value
        if not changes:
            return secret
        with conflicts_as(f"Client {client.code} already has a secret named '{secret.name}'."):
            secret.save()
        _log_access(
            actor=actor, secret=secret, access_type=SecretAccess.Type.CREATE if creating else SecretAccess.Type.UPDATE
        )
        record(
            actor=actor,
            action="secret.created" if creating else "secret.updated",
            client=client,
            target=secret,
            changes=changes,
        )
    return secret


def _secret_snapshot(secret: Secret) -> dict[str, Any]:
    return {
        "name": secret.name,
        "provider": secret.provider,
        "secret_type": secret.secret_type,
        "description": secret.description,
        "tags": list(secret.tags),
        "expires_at": secret.expires_at,
        "is_active": secret.is_active,
    }


def _decrypt(secret: Secret) -> bytes:
    keys = client_keys(secret.client)
    return keys.decrypt(bytes(secret.ciphertext), purpose=SECRET_PURPOSE, record_id=str(secret.pk))


def use_secret(*, actor, secret: Secret) -> bytes:
    """The value's bytes, for internal callers (an integration about to call out). Counts the use and logs it."""
    now = timezone.now()
    if not secret.is_active:
        raise Refused(f"Secret {secret.name} is deactivated.", code="secret_inactive")
    if secret.expires_at is not None and secret.expires_at <= now:
        raise Refused(f"Secret {secret.name} expired on {secret.expires_at:%Y-%m-%d}.", code="secret_expired")
    with _atomic():
        value = _decrypt(secret)
        Secret.objects.filter(pk=secret.pk).update(usage_count=F("usage_count") + 1, last_used_at=now)
        _log_access(actor=actor, secret=secret, access_type=SecretAccess.Type.USE)
        record(actor=actor, action="secret.used", client=secret.client, target=secret)
    return value


def reveal_secret(*, actor, secret: Secret, reason: str) -> bytes:
    """The value's bytes, for a member of staff with the `vault.reveal_secret` permission and a stated reason.

    Text values are their UTF-8; `vault.selectors.value_as_text()` tells them from binary ones.
    """
    reason = (reason or "").strip()
    if getattr(actor, "is_authenticated", False) and not actor.has_perm("vault.reveal_secret"):
        raise Forbidden("Revealing a secret needs the 'Can reveal a secret's value' permission.")
    refuse_control_characters(reason=reason)
    if not 5 <= len(reason) <= MAX_REASON_LENGTH:
        raise InvalidInput(
            f"Say why the value is needed (5 to {MAX_REASON_LENGTH} characters); the reason is recorded.",
            code="reason_required",
            fields={"reason": ["Say why the value is needed."]},
        )
    with _atomic():
        value = _decrypt(secret)
        _log_access(actor=actor, secret=secret, access_type=SecretAccess.Type.REVEAL, reason=reason)
        record(actor=actor, action="secret.revealed", client=secret.client, target=secret, changes={"reason": reason})
    return value


def deactivate_secret(*, actor, secret: Secret) -> Secret:
    with _atomic():
        updated = Secret.objects.filter(pk=secret.pk, is_active=True).update(is_active=False)
        secret.is_active = False
        if updated:  # re-running is safe and records nothing
            _log_access(actor=actor, secret=secret, access_type=SecretAccess.Type.DEACTIVATE)
            record(actor=actor, action="secret.deactivated", client=secret.client, target=secret)
    return secret


def delete_secret(*, actor, secret: Secret) -> None:
    """Delete the secret; its access log and audit events stay."""
    with _atomic():
        deleted, _ = Secret.objects.filter(pk=secret.pk).delete()
        if deleted:
            _log_access(actor=actor, secret=secret, access_type=SecretAccess.Type.DELETE)
            record(actor=actor, action="secret.deleted", client=secret.client, target=secret)


# --- Signing keys --------------------------------------------------------------------------------


def rotate_signing_key(*, actor) -> SigningKey:
    """A new active signing key; the old one stops signing but stays published until its tokens have expired."""
    now = timezone.now()
    with _atomic():
        previous = SigningKey.objects.select_for_update().filter(status=SigningKey.Status.ACTIVE).first()
        retired = SigningKey.objects.filter(status=SigningKey.Status.RETIRING, publish_until__lte=now).update(
            status=SigningKey.Status.RETIRED, retired_at=now
        )
        if previous is not None:
            previous.status = SigningKey.Status.RETIRING
            previous.retiring_since = now
            previous.publish_until = now + timedelta(days=settings.FLOWS_TOKEN_MAX_LIFETIME_DAYS)
            previous.save(update_fields=["status", "retiring_since", "publish_until"])
        key = SigningKey.objects.create(**signing.generate())
        record(
            actor=actor,
            action="signing_key.rotated",
            target=key,
            changes={
                "kid": key.kid,
                "previous_kid": previous.kid if previous else None,
                "previous_published_until": previous.publish_until if previous else None,
                "retired": retired,
            },
        )
    return key
