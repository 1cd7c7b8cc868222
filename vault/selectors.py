"""Reads about the vault: a client's keys ready to use, secret lookup, and the status overview."""

from __future__ import annotations

import uuid
from collections import Counter

from django.db.models import Count, F, OuterRef, Q, Subquery
from django.utils import timezone

from clients.models import Client
from config.errors import NotFound, Refused, excerpt
from vault import keyring
from vault.errors import KeyRingError, VaultError
from vault.keys import ClientKeys, data_key_context, unwrap
from vault.models import SLUG, DataKey, Secret, SigningKey
from vault.signing import private_key_context


def client_keys(client: Client) -> ClientKeys:
    """The client's data keys (one query); unwrapping happens on first use of each version."""
    rows = DataKey.objects.filter(client_id=client.pk).values_list("version", "status", "wrapped_key")
    return keys_from_rows(client, rows)


def keys_from_rows(client: Client, rows) -> ClientKeys:
    """`client_keys` from (version, status, wrapped_key) rows read elsewhere (issuing reads them with its lock)."""
    rows = list(rows)
    return ClientKeys(
        client_id=client.pk,
        client_code=client.code,
        wrapped={version: bytes(wrapped) for version, status, wrapped in rows if status != DataKey.Status.DESTROYED},
        active_version=next((version for version, status, _ in rows if status == DataKey.Status.ACTIVE), None),
        erased=any(status == DataKey.Status.DESTROYED for _, status, _ in rows),
    )


def is_erased(client: Client) -> bool:
    return DataKey.objects.filter(client_id=client.pk, status=DataKey.Status.DESTROYED).exists()


def get_secret(client: Client, reference: str) -> Secret:
    """One of the client's secrets by name or id."""
    reference = (reference or "").strip()
    try:
        lookup = {"pk": uuid.UUID(reference)}
    except ValueError:
        lookup = {"name": reference.lower()}
    try:
        if "name" in lookup and not SLUG.regex.fullmatch(lookup["name"]):
            raise Secret.DoesNotExist  # no secret has such a name: answered without a query
        return Secret.objects.select_related("client").get(client_id=client.pk, **lookup)
    except Secret.DoesNotExist:
        message = f"Client {client.code} has no secret '{excerpt(reference)}'."
        raise NotFound(message, code="secret_not_found") from None


def value_as_text(value: bytes) -> str | None:
    """A secret's value as text when it is UTF-8 (a token, a password, a PEM file), None when it is binary."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None


def secrets_of(client: Client):
    return Secret.objects.filter(client_id=client.pk).order_by("name")


def active_version_subquery(client_ref: str = "client_id"):
    """The active data key version of the client that the outer row's `client_ref` names."""
    return Subquery(
        DataKey.objects.filter(client_id=OuterRef(client_ref), status=DataKey.Status.ACTIVE).values("version")[:1]
    )


def secrets_on_old_versions(client: Client | None = None):
    """Secrets not yet encrypted under their client's active data key: what `rewrap` has left to do."""
    queryset = Secret.objects.annotate(active_version=active_version_subquery()).filter(
        data_key_version__lt=F("active_version")
    )
    return queryset.filter(client_id=client.pk) if client is not None else queryset


def published_signing_keys():
    """Keys the JWKS serves: the active one and those retiring until every token they signed has expired."""
    now = timezone.now()
    return SigningKey.objects.filter(
        Q(status=SigningKey.Status.ACTIVE) | Q(status=SigningKey.Status.RETIRING, publish_until__gt=now)
    ).order_by("status", "-created_at")


def wrapped_by_master_key() -> Counter:
    """How many live data keys and signing keys each master key id wraps (two grouped queries)."""
    counts = Counter()
    for queryset in (DataKey.objects.exclude(status=DataKey.Status.DESTROYED), SigningKey.objects.all()):
        for master_key_id, n in (
            queryset.values("master_key_id").annotate(n=Count("id")).values_list("master_key_id", "n")
        ):
            counts[master_key_id] += n
    return counts


def vault_status() -> dict:
    """Key ring ids, what each master key wraps, data key versions per client, values on old versions, signing keys."""
    try:
        ring = keyring.load()
        ring_ids, primary, ring_error = ring.ids, ring.primary.id, ""
    except KeyRingError as error:
        ring_ids, primary, ring_error = [], "", error.message
    wrapped_by = wrapped_by_master_key()
    clients = (
        Client.objects.annotate(
            active_version=active_version_subquery("pk"),
            versions=Count("data_keys", filter=~Q(data_keys__status=DataKey.Status.DESTROYED), distinct=True),
            destroyed=Count("data_keys", filter=Q(data_keys__status=DataKey.Status.DESTROYED), distinct=True),
        )
        .order_by("code")
        .values("code", "active_version", "versions", "destroyed")
    )
    old = dict(
        secrets_on_old_versions().values_list("client__code").annotate(n=Count("id")).values_list("client__code", "n")
    )
    return {
        "key_ring": {"ids": ring_ids, "primary": primary, "error": ring_error},
        "wrapped_by_master_key": dict(sorted(wrapped_by.items())),
        "clients": [
            {
                "code": row["code"],
                "active_version": row["active_version"],
                "live_versions": row["versions"],
                "erased": row["destroyed"] > 0,
                "secrets_on_old_versions": old.get(row["code"], 0),
            }
            for row in clients
        ],
        "secrets_on_old_versions": sum(old.values()),
        "signing_keys": [
            {"kid": key.kid, "status": key.status, "created_at": key.created_at, "publish_until": key.publish_until}
            for key in SigningKey.objects.order_by("-created_at")
        ],
    }


def active_signing_key() -> SigningKey:
    key = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).first()
    if key is None:
        raise Refused("There is no active signing key: run manage.py rotate_signing_key.", code="no_signing_key")
    return key


def key_ring_problems() -> list[str]:
    """Why the vault could not decrypt something: a broken key ring, or keys wrapped by a master key not in it."""
    try:
        ring = keyring.load()
    except KeyRingError as error:
        return [f"vault: {error.message}"]
    wrapped_by = wrapped_by_master_key()
    problems = [
        f"vault: {count} key(s) are wrapped by master key '{key_id}', which is not in the key ring"
        for key_id, count in sorted(wrapped_by.items())
        if key_id not in ring.ids
    ]
    # One unwrap per master key in use: the right id with the wrong key material fails here, not on first use.
    for key_id in sorted(set(wrapped_by) & set(ring.ids)):
        sample = (
            DataKey.objects.exclude(status=DataKey.Status.DESTROYED).filter(master_key_id=key_id).first()
            or SigningKey.objects.filter(master_key_id=key_id).first()
        )
        try:
            if isinstance(sample, DataKey):
                unwrap(bytes(sample.wrapped_key), data_key_context(sample.client_id, sample.version), what="data key")
            else:
                unwrap(bytes(sample.wrapped_private_key), private_key_context(sample.kid), what="signing key")
        except VaultError:
            problems.append(f"vault: master key '{key_id}' in the key ring is not the key that wrapped {sample}")
    return problems
