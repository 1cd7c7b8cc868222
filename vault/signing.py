"""Ed25519 signing keys for invitation tokens: generation, RFC 7638 key ids, the JWKS, and signing.

Tokens are compact JWS with `alg: EdDSA` and the signing key's `kid` in the header, so any
standard JOSE library can verify them against `/.well-known/jwks.json` without a database.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from vault.envelope import Context
from vault.errors import VaultError
from vault.keys import unwrap, wrap
from vault.models import SigningKey

ALGORITHM = "EdDSA"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(public_raw: bytes) -> str:
    """RFC 7638 JWK thumbprint (SHA-256) of an Ed25519 public key: a stable, content-derived `kid`."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": b64url(public_raw)}, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode()).digest())


def private_key_context(kid: str) -> Context:
    return Context("signing-key", "", kid)


def generate() -> dict:
    """A new key pair as SigningKey fields: kid, public key, private key wrapped by the primary master key."""
    private = Ed25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = thumbprint(public_raw)
    private_raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    wrapped, master_key_id = wrap(private_raw, private_key_context(kid))
    return {
        "kid": kid,
        "algorithm": ALGORITHM,
        "public_key": public_raw,
        "wrapped_private_key": wrapped,
        "master_key_id": master_key_id,
    }


def jwk(key: SigningKey) -> dict:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(bytes(key.public_key)),
        "kid": key.kid,
        "alg": ALGORITHM,
        "use": "sig",
    }


def jwks(keys) -> dict:
    """RFC 7517 JWK Set of the given signing keys (public halves only)."""
    return {"keys": [jwk(key) for key in keys]}


def jwks_json(keys) -> str:
    return json.dumps(jwks(keys), separators=(",", ":"))


def sign(claims: dict, key: SigningKey) -> str:
    """A compact JWS of `claims` signed by `key` (which must be the active key; callers select it)."""
    if key.status != SigningKey.Status.ACTIVE:
        raise VaultError(f"Signing key {key.kid} is {key.status}; only the active key signs.", code="key_not_active")
    return jwt.encode(
        claims, _private_key(key.kid, bytes(key.wrapped_private_key)), algorithm=ALGORITHM, headers={"kid": key.kid}
    )


@lru_cache(maxsize=8)
def _private_key(kid: str, wrapped: bytes) -> Ed25519PrivateKey:
    # Keyed by the wrapped bytes too: a re-wrap under a new master key is a new entry, never a stale one.
    raw = unwrap(wrapped, private_key_context(kid), what=f"Signing key {kid}")
    return Ed25519PrivateKey.from_private_bytes(raw)
