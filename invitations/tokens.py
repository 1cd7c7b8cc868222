"""Invitation tokens: compact JWS signed with Ed25519, the invitee's personal data inside, encrypted.

    header  {"alg": "EdDSA", "kid": <signing key thumbprint>, "typ": "JWT"}
    claims  iss, aud, sub (invitation id), iat, nbf, exp, client (code), app (app code),
            permissions, restrictions,
            invitee: {"enc": "A256GCM", "kv": <data key version>, "data": <base64url vault envelope>}

The invitee ciphertext is bound (associated data) to the invitation id and the client id, so it
cannot be moved to another invitation or client. Verification needs only the public keys
(`/.well-known/jwks.json`); what a token claims is then checked against the database by
`invitations.services`. Every rejection has a stable code (`REJECTIONS`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
import time
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings

from clients.models import APP_CODE_PATTERN, CODE_PATTERN, Application, Client
from config.errors import FlowsError
from vault import signing
from vault.errors import ClientErased, VaultError
from vault.keys import ClientKeys
from vault.selectors import published_signing_keys

ALGORITHM = "EdDSA"
INVITEE_PURPOSE = "invitee"
LEEWAY_SECONDS = 30  # clock skew between the console and the applications' servers
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "nbf", "exp", "client", "app", "invitee"]
MAX_TOKEN_LENGTH = 16_384
PERMISSION = re.compile(r"^[a-z][a-z0-9_.:-]{0,49}$")
MAX_PERMISSIONS = 20
LATEST_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z: any later `exp` would overflow a datetime

# Checked before anything parses the token: whatever passes is ASCII (so it hashes and encodes),
# and nothing else reaches PyJWT, the JSON parser or the database. The signature may be empty
# so that an unsigned (`alg: none`) token is refused for its algorithm, the more telling reason.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# The kids we publish are RFC 7638 thumbprints (43 base64url characters); anything else is
# unknown without a query, whatever the database could or could not store.
_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SUB = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_CLIENT_CODE = re.compile(CODE_PATTERN)
_APP_CODE = re.compile(APP_CODE_PATTERN)
_CLIENT_CODE_LENGTH = Client._meta.get_field("code").max_length
_APP_CODE_LENGTH = Application._meta.get_field("app_code").max_length

REJECTIONS = {
    "malformed_token": "The token is not a well-formed invitation token.",
    "algorithm_not_allowed": "The token is not signed with EdDSA.",
    "unknown_kid": "The token names a signing key that is not published.",
    "invalid_signature": "The token's signature does not verify.",
    "wrong_issuer": "The token was not issued by this console.",
    "wrong_audience": "The token is not meant for Flows applications.",
    "not_yet_valid": "The token is not valid yet.",
    "expired": "The invitation has expired.",
    "unknown_invitation": "There is no such invitation.",
    "hash_mismatch": "The token is not the invitation's current token (it was resent or altered).",
    "revoked": "The invitation was revoked.",
    "already_used": "The invitation has already been used.",
    "client_inactive": "The client is not active.",
    "client_erased": "The client was erased; its invitations can no longer be read.",
    "wrong_client": "The invitation belongs to another client.",
    "invalid_invitee_data": "The invitation's personal data cannot be decrypted.",
}


# PyJWT's verdicts as rejection codes; the first match wins, the last catches the rest.
_PYJWT_ERRORS = (
    (jwt.InvalidSignatureError, "invalid_signature"),
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidTokenError, "malformed_token"),
)


class InvitationRejected(FlowsError):
    """A token or invitation that must not be accepted, with one of the REJECTIONS codes."""

    http_status = 400

    def __init__(self, code: str, message: str | None = None, *, stage: str = "token"):
        super().__init__(f"{code}: {message or REJECTIONS[code]}", code=code)
        # "token" (format, signature, standard claims), "claims" (the console's own, behind a valid
        # signature) or "database" (the invitation's state)
        self.stage = stage


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(
    *, invitation, client, application, invitee: dict, keys: ClientKeys, signing_key, issued_at: datetime
) -> str:
    """The signed token for `invitation`, carrying `invitee` (name and e-mails) encrypted."""
    ciphertext, version = keys.encrypt(
        json.dumps(invitee, separators=(",", ":")).encode(), purpose=INVITEE_PURPOSE, record_id=str(invitation.pk)
    )
    now = int(issued_at.timestamp())
    claims = {
        "iss": settings.FLOWS_TOKEN_ISSUER,
        "aud": settings.FLOWS_TOKEN_AUDIENCE,
        "sub": str(invitation.pk),
        "iat": now,
        "nbf": now,
        "exp": int(invitation.expires_at.timestamp()),
        "client": client.code,
        "app": application.app_code,
        "permissions": list(invitation.permissions),
        "restrictions": invitation.restrictions,
        "invitee": {"enc": "A256GCM", "kv": version, "data": signing.b64url(ciphertext)},
    }
    return signing.sign(claims, signing_key)


class PublicKeys:
    """The published verification keys, cached in the process for a minute.

    A kid not in the cache is looked up on its own (one indexed query), so a key published a
    moment ago verifies at once, and unknown kids never cause a full reload.
    """

    MAX_AGE = 60.0
    COLUMNS = (
        "id",
        "kid",
        "algorithm",
        "public_key",
        "status",
        "publish_until",
        "created_at",
    )  # what flows_app may read

    def __init__(self):
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def get(self, kid) -> Ed25519PublicKey | None:
        """The public key named `kid` (whatever a token's header holds), or None."""
        if not (isinstance(kid, str) and _KID.fullmatch(kid)):
            return None
        if time.monotonic() - self._loaded_at > self.MAX_AGE:
            self.refresh()
        key = self._keys.get(kid)
        if key is None:
            row = published_signing_keys().filter(kid=kid).only(*self.COLUMNS).first()
            if row is not None:
                key = Ed25519PublicKey.from_public_bytes(bytes(row.public_key))
                with self._lock:
                    self._keys = {**self._keys, kid: key}
        return key

    def refresh(self) -> None:
        rows = published_signing_keys().only(*self.COLUMNS)
        keys = {row.kid: Ed25519PublicKey.from_public_bytes(bytes(row.public_key)) for row in rows}
        with self._lock:
            self._keys, self._loaded_at = keys, time.monotonic()

    def clear(self) -> None:
        with self._lock:
            self._keys, self._loaded_at = {}, 0.0


public_keys = PublicKeys()


def decode(token: str) -> dict:
    """The verified claims of `token` — signature, algorithm, issuer, audience, times, shape — or InvitationRejected."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
        raise InvitationRejected("malformed_token")
    header = _header(token)
    alg = header.get("alg")
    if alg != ALGORITHM:
        # Echoed only when a short string: anything else, up to 16 KB of it, would flood the message.
        named = f" with {alg!r}" if isinstance(alg, str) and len(alg) <= 32 else ""
        raise InvitationRejected("algorithm_not_allowed", f"The token is signed{named}, not with EdDSA.")
    key = public_keys.get(header.get("kid"))
    if key is None:
        raise InvitationRejected("unknown_kid")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=settings.FLOWS_TOKEN_AUDIENCE,
            issuer=settings.FLOWS_TOKEN_ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.InvalidTokenError as error:
        code = next(code for kind, code in _PYJWT_ERRORS if isinstance(error, kind))
        raise InvitationRejected(code) from None
    _check_shape(claims)
    return claims


def _header(token: str) -> dict:
    """The JOSE header, read with the standard library: PyJWT parses the whole token again when it verifies,
    and its own header reader would double the cost of validation (docs/performance.md)."""
    try:
        header = json.loads(b64url_decode(token.split(".", 1)[0]))
    except (ValueError, RecursionError):  # ValueError covers bad base64, bad UTF-8, bad JSON, too many digits
        raise InvitationRejected("malformed_token") from None
    if not isinstance(header, dict):
        raise InvitationRejected("malformed_token")
    return header


def _check_shape(claims: dict) -> None:
    """The claims the console reads are of the shapes it issues, so that no later query or conversion can fail.

    Behind a valid signature, so a failure here means a token signed by the console's key that the
    console did not issue: stage "claims", for the check page.
    """
    invitee, permissions = claims["invitee"], claims.get("permissions", [])
    valid = (
        _is(claims["sub"], _SUB, 36)
        and _is(claims["client"], _CLIENT_CODE, _CLIENT_CODE_LENGTH)
        and _is(claims["app"], _APP_CODE, _APP_CODE_LENGTH)
        and all(type(claims[name]) is int and 0 <= claims[name] <= LATEST_TIMESTAMP for name in ("iat", "nbf", "exp"))
        and isinstance(permissions, list)
        and len(permissions) <= MAX_PERMISSIONS
        and all(_is(permission, PERMISSION, 50) for permission in permissions)
        and isinstance(claims.get("restrictions", {}), dict)
        and isinstance(invitee, dict)
        and _is(invitee.get("data"), _BASE64URL, MAX_TOKEN_LENGTH)
    )
    if not valid:
        raise InvitationRejected("malformed_token", stage="claims")


def _is(value, shape: re.Pattern, max_length: int) -> bool:
    return isinstance(value, str) and len(value) <= max_length and shape.fullmatch(value) is not None


def decrypt_invitee(claims: dict, keys: ClientKeys) -> dict:
    """The invitee's personal data from verified claims, with the client's keys."""
    try:
        blob = b64url_decode(claims["invitee"]["data"])
        data = keys.decrypt(blob, purpose=INVITEE_PURPOSE, record_id=str(claims["sub"]))
        return json.loads(data)
    except ClientErased:
        raise InvitationRejected("client_erased") from None
    except (VaultError, ValueError, binascii.Error):
        raise InvitationRejected("invalid_invitee_data") from None


def token_from_link(text: str) -> str:
    """The token inside an invitation link as people forward it (`…/invitation#token=…`), else the text as given.

    Whitespace and enclosing <>/quotes are dropped first. Looks in the fragment's and the
    query's `token=`, then the bare fragment, then the path's segments, for the first value shaped
    like a token; a text with none is returned unchanged, for the checks to reject with their reason.
    """
    text = "".join((text or "").split()).strip("<>\"'")  # mail programs wrap long links, some in <…>
    if not any(mark in text for mark in ("://", "#", "?")):
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    candidates = [
        *parse_qs(parts.fragment).get("token", []),
        *parse_qs(parts.query).get("token", []),
        parts.fragment,
        *reversed(parts.path.split("/")),
    ]
    return next((candidate for candidate in candidates if _TOKEN.fullmatch(candidate)), text)


def invitation_link(client, application, token: str) -> str:
    """The link the invitee receives (FLOWS_INVITATION_LINK): the token in the fragment, out of server logs."""
    return settings.FLOWS_INVITATION_LINK.format(domain=client.domain, app=application.app_code, token=token)
