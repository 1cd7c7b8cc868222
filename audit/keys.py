"""The audit trail's keys, from the environment only: the HMAC keys of the chain and the Ed25519 checkpoint key.

`FLOWS_AUDIT_KEYS`: `<id>:<base64 of 32 bytes>[,…]`, the same format as the vault's master keys;
the first one keys every new event, the others keep older events verifiable after a rotation.
`FLOWS_AUDIT_SIGNING_KEY` (or a file, `FLOWS_AUDIT_SIGNING_KEY_FILE`): `<id>:<base64 of a 32-byte
Ed25519 private key>`, used by `audit_checkpoint` only. `FLOWS_AUDIT_PUBLIC_KEYS`: the public
halves of retired signing keys, so checkpoints they signed still verify. None of them is ever
stored in the database (an owner or superuser reads everything there) or wrapped by the vault.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings

from vault import keyring
from vault.errors import KeyRingError


class AuditKeyError(KeyRingError):
    code = "audit_key"


@cache
def _chain_keys(text: str) -> keyring.KeyRing:
    if not text:
        raise AuditKeyError("No audit keys: set FLOWS_AUDIT_KEYS; manage.py generate_audit_key makes one.")
    return keyring.parse(text, source="FLOWS_AUDIT_KEYS")


def chain_keys() -> keyring.KeyRing:
    """The HMAC keys of the chain, the current one first."""
    return _chain_keys(settings.FLOWS_AUDIT_KEYS)


def _entry(text: str, source: str) -> tuple[str, bytes]:
    key_id, sep, encoded = text.strip().partition(":")
    if not sep or not keyring.KEY_ID.match(key_id):
        raise AuditKeyError(f"{source} is not '<id>:<base64 key>' with an id of 1-32 letters, digits, '-' or '_'.")
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuditKeyError(f"{source}: key '{key_id}' is not valid base64.") from None
    if len(raw) != keyring.KEY_BYTES:
        raise AuditKeyError(f"{source}: key '{key_id}' is {len(raw)} bytes; Ed25519 keys are 32 bytes.")
    return key_id, raw


@dataclass(frozen=True)
class SigningKey:
    id: str
    private: Ed25519PrivateKey = field(repr=False)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode()

    @property
    def public(self) -> str:
        return _public_text(self.private.public_key())


def _public_text(public: Ed25519PublicKey) -> str:
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def signing_key() -> SigningKey:
    """The checkpoint signing key; AuditKeyError when it is not configured or not readable."""
    return _signing_key(settings.FLOWS_AUDIT_SIGNING_KEY, settings.FLOWS_AUDIT_SIGNING_KEY_FILE)


@cache
def _signing_key(inline: str, path: str) -> SigningKey:
    if inline and path:
        raise AuditKeyError("Set FLOWS_AUDIT_SIGNING_KEY or FLOWS_AUDIT_SIGNING_KEY_FILE, not both.")
    source = "FLOWS_AUDIT_SIGNING_KEY"
    if path:
        source = f"FLOWS_AUDIT_SIGNING_KEY_FILE {path}"
        try:
            inline = Path(path).read_text()
        except OSError as error:
            raise AuditKeyError(f"{source}: cannot be read ({error.strerror}).") from None
    if not inline.strip():
        raise AuditKeyError(
            "No checkpoint signing key: set FLOWS_AUDIT_SIGNING_KEY or FLOWS_AUDIT_SIGNING_KEY_FILE; "
            "manage.py generate_audit_key --signing makes one."
        )
    key_id, raw = _entry(inline, source)
    return SigningKey(key_id, Ed25519PrivateKey.from_private_bytes(raw))


def public_keys() -> dict[str, Ed25519PublicKey]:
    """Key id → public key a checkpoint may be signed with: the current signing key's and FLOWS_AUDIT_PUBLIC_KEYS."""
    keys = {}
    for entry in filter(None, (part.strip() for part in settings.FLOWS_AUDIT_PUBLIC_KEYS.split(","))):
        key_id, raw = _entry(entry, "FLOWS_AUDIT_PUBLIC_KEYS")
        keys[key_id] = Ed25519PublicKey.from_public_bytes(raw)
    if settings.FLOWS_AUDIT_SIGNING_KEY or settings.FLOWS_AUDIT_SIGNING_KEY_FILE:
        current = signing_key()
        keys[current.id] = current.private.public_key()
    return keys


def signature_valid(public: Ed25519PublicKey, signature: str, message: bytes) -> bool:
    try:
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def generate_chain_key(key_id: str | None = None) -> str:
    """A new `FLOWS_AUDIT_KEYS` entry."""
    key_id = key_id or f"ak{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"
    if not keyring.KEY_ID.match(key_id):
        raise AuditKeyError("A key id is 1-32 letters, digits, '-' or '_'.")
    return keyring.generate(key_id)


def generate_signing_key(key_id: str | None = None) -> tuple[str, str]:
    """A new `FLOWS_AUDIT_SIGNING_KEY` entry and the matching `FLOWS_AUDIT_PUBLIC_KEYS` entry."""
    key_id = key_id or f"ck{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"
    if not keyring.KEY_ID.match(key_id):
        raise AuditKeyError("A key id is 1-32 letters, digits, '-' or '_'.")
    raw = secrets.token_bytes(keyring.KEY_BYTES)
    public = _public_text(Ed25519PrivateKey.from_private_bytes(raw).public_key())
    return f"{key_id}:{base64.b64encode(raw).decode()}", f"{key_id}:{public}"
