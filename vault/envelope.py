"""The one ciphertext format of the vault: self-describing, and bound to where it belongs.

Layout (bytes):

    0       format version (1)
    1       n = length of the key reference (1..64)
    2..2+n  key reference, ASCII: "dk:<version>" (a client's data key) or "mk:<id>" (a master key)
    +12     nonce (random, 96 bits)
    rest    AES-256-GCM ciphertext and its 16-byte tag

The associated data binds a ciphertext to its header and its context — purpose, client and
record — so a value copied to another row, another client or another use does not decrypt:

    b"flows-vault" 0x00 header 0x00 purpose 0x00 client_id 0x00 record_id
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import DecryptionFailed, MalformedCiphertext

FORMAT_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_KEY_REF = 64
AAD_PREFIX = b"flows-vault"


@dataclass(frozen=True)
class Context:
    """Where a ciphertext belongs. Every field is part of the associated data."""

    purpose: str  # e.g. "secret", "data-key", "signing-key", "invitee"
    client_id: str  # "" for platform-wide values (signing keys)
    record_id: str

    def associated_data(self, header: bytes) -> bytes:
        return associated_data(header, field(self.purpose), field(self.client_id), field(self.record_id))


def field(value: str) -> bytes:
    """One associated-data field. NUL separates the fields, so it may not occur inside one."""
    if "\x00" in value:
        raise ValueError("associated data fields cannot contain NUL")
    return value.encode()


def associated_data(header: bytes, purpose: bytes, client_id: bytes, record_id: bytes) -> bytes:
    return b"\x00".join((AAD_PREFIX, header, purpose, client_id, record_id))


def header(key_ref: str) -> bytes:
    encoded = key_ref.encode("ascii")
    if not 0 < len(encoded) <= MAX_KEY_REF:
        raise ValueError("key reference must be 1-64 ASCII characters")
    return bytes([FORMAT_VERSION, len(encoded)]) + encoded


def seal(cipher: AESGCM, key_ref: str, plaintext: bytes, context: Context) -> bytes:
    head = header(key_ref)
    nonce = os.urandom(NONCE_BYTES)
    return head + nonce + cipher.encrypt(nonce, plaintext, context.associated_data(head))


def key_ref(blob: bytes) -> str:
    """The key a ciphertext names, after checking its shape (MalformedCiphertext otherwise)."""
    return split(blob)[0]


def open_sealed(cipher: AESGCM, blob: bytes, context: Context) -> bytes:
    ref, head, nonce, body = split(blob)
    try:
        return cipher.decrypt(nonce, body, context.associated_data(head))
    except InvalidTag:
        raise DecryptionFailed(
            f"Ciphertext under {ref} does not authenticate: it was altered, belongs to another "
            f"{context.purpose} record or client, or the key is not the one it was sealed with."
        ) from None


def split(blob: bytes) -> tuple[str, bytes, bytes, bytes]:
    """(key reference, header, nonce, ciphertext and tag); MalformedCiphertext when the shape is wrong."""
    blob = bytes(blob)
    if len(blob) < 2 or blob[0] != FORMAT_VERSION:
        version = blob[0] if blob else "none"
        raise MalformedCiphertext(f"Not a vault ciphertext (format version {version}, expected {FORMAT_VERSION}).")
    length = blob[1]
    end = 2 + length
    if not 0 < length <= MAX_KEY_REF or len(blob) < end + NONCE_BYTES + TAG_BYTES:
        raise MalformedCiphertext("Vault ciphertext is truncated or its header is corrupt.")
    try:
        ref = blob[2:end].decode("ascii")
    except UnicodeDecodeError:
        raise MalformedCiphertext("Vault ciphertext has a corrupt key reference.") from None
    return ref, blob[:end], blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :]
