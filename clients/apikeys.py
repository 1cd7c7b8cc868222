"""The API key format: `flk_<prefix>_<secret>`. Only SHA-256 of the secret is stored.

The secret is 32 random bytes, so a fast hash is the right one (there is nothing to brute-force,
unlike a password); comparison is constant-time. The prefix is random too, never chosen by
input, which is why its global uniqueness cannot serve as a cross-tenant oracle.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_PATTERN = re.compile(r"^flk_(?P<prefix>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")


def generate() -> tuple[str, str, str]:
    """A new key: (full key shown once, public prefix, hash of the secret to store)."""
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return f"flk_{prefix}_{secret}", prefix, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(key: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    match = KEY_PATTERN.match(key or "")
    return (match["prefix"], match["secret"]) if match else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
