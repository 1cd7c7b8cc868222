"""Every rejection code, with tokens forged by the tests; and verification by an independent JWT library."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone
from jwcrypto import jwk
from jwcrypto import jwt as jwcrypto_jwt

from clients import services as client_services
from invitations import services, tokens
from invitations.models import Invitation
from invitations.tokens import InvitationRejected
from tests.invitations.conftest import ADA, GRACE
from vault import signing
from vault.selectors import active_signing_key, client_keys

db = pytest.mark.django_db(databases="__all__")
# Redemption runs as flows_app on its own connection: it must see committed rows.
committed = pytest.mark.usefixtures("committed")


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def resign(claims: dict) -> str:
    """What an attacker holding the console's private key could do — used to reach the checks behind the signature."""
    return signing.sign(claims, active_signing_key())


def rejected(code: str, token: str) -> None:
    with pytest.raises(InvitationRejected) as caught:
        services.validate_invitation(token=token)
    assert caught.value.code == code, caught.value.message


@committed
def test_a_fresh_token_validates_and_is_redeemed_exactly_once(issue):
    invitation, token = issue()
    assert services.validate_invitation(token=token).pk == invitation.pk
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == invitation.kid
    claims = claims_of(token)
    assert set(claims) == {
        "iss",
        "aud",
        "sub",
        "iat",
        "nbf",
        "exp",
        "client",
        "app",
        "permissions",
        "restrictions",
        "invitee",
    }
    assert claims["sub"] == str(invitation.pk) and (claims["client"], claims["app"]) == ("acme", "onboarding")
    assert "Ada" not in json.dumps(claims) and claims["invitee"]["enc"] == "A256GCM"

    redemption = services.redeem_invitation(actor=None, token=token)
    assert redemption.invitee == {
        "name": ADA.full_name,
        "company_email": ADA.company_email,
        "private_email": ADA.private_email,
    }
    assert Invitation.objects.get().status == "accepted"
    rejected("already_used", token)
    with pytest.raises(InvitationRejected, match="already been used"):
        services.redeem_invitation(actor=None, token=token)


@db
@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "x" * 20_000, "eyJhbGciOiJFZERTQSJ9.e30"])
def test_malformed(world, token):
    rejected("malformed_token", token)


@db
def test_algorithm_none_and_hs256_with_the_public_key_are_refused(issue):
    invitation, token = issue()
    claims = claims_of(token)
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': invitation.kid})}.{b64(claims)}."
    rejected("algorithm_not_allowed", unsigned)
    public = bytes(active_signing_key().public_key)
    for secret in (public, signing.b64url(public).encode()):
        confused = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": invitation.kid})
        rejected("algorithm_not_allowed", confused)


@db
def test_unknown_kid_and_a_signature_by_another_key(issue):
    _, token = issue()
    claims = claims_of(token)
    stranger = Ed25519PrivateKey.generate()
    rejected("unknown_kid", jwt.encode(claims, stranger, algorithm="EdDSA", headers={"kid": "not-published"}))
    forged = jwt.encode(claims, stranger, algorithm="EdDSA", headers={"kid": active_signing_key().kid})
    rejected("invalid_signature", forged)


@db
def test_edited_claims_break_the_signature(issue):
    _, token = issue()
    header, _, signature = token.split(".")
    claims = {**claims_of(token), "permissions": ["admin"]}
    rejected("invalid_signature", f"{header}.{b64(claims)}.{signature}")


@db
@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"iss": "https://evil.example"}, "wrong_issuer"),
        ({"aud": "someone-else"}, "wrong_audience"),
        ({"nbf": int(time.time()) + 3600}, "not_yet_valid"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"sub": "not-a-uuid"}, "malformed_token"),
        ({"sub": "00000000-0000-4000-8000-000000000000"}, "unknown_invitation"),
    ],
)
def test_claims_checked_behind_the_signature(issue, change, code):
    _, token = issue()
    rejected(code, resign({**claims_of(token), **change}))


@db
@pytest.mark.parametrize(
    "change",
    [
        {"client": "a\x00b"},
        {"client": "\ud800"},
        {"client": ["acme"]},
        {"app": "Onboarding"},
        {"app": "onboarding\n"},
        {"sub": "urn:uuid:00000000-0000-4000-8000-000000000000"},
        {"sub": "00000000-0000-4000-8000-00000000000A"},
        {"iat": 1.5},
        {"iat": True},
        {"nbf": "0"},
        {"exp": 10**20},
        {"exp": str(int(time.time()) + 3600)},
        {"permissions": "manager"},
        {"permissions": ["manager\x00"]},
        {"permissions": [f"p{n}" for n in range(21)]},
        {"restrictions": ["region"]},
        {"invitee": "AQRkazox"},
        {"invitee": {"enc": "A256GCM", "kv": 1, "data": "not base64url!"}},
    ],
)
def test_claims_the_console_never_issues_are_malformed_even_when_signed(issue, change):
    """PyJWT accepts all of these (a float iat, a numeric string nbf, an exp past year 9999); the console does not."""
    _, token = issue()
    with pytest.raises(InvitationRejected) as caught:
        tokens.decode(resign({**claims_of(token), **change}))
    assert (caught.value.code, caught.value.stage) == ("malformed_token", "claims")


@db
def test_a_token_that_is_not_the_current_one_is_a_hash_mismatch(issue):
    invitation, token = issue()
    rejected("hash_mismatch", resign({**claims_of(token), "permissions": ["more"]}))
    new_token = services.resend_invitation(actor=None, invitation=invitation, invitee=ADA)
    rejected("hash_mismatch", token)  # the old token stops working at once
    assert services.validate_invitation(token=new_token).resend_count == 1


@committed
def test_invitee_ciphertext_swapped_between_invitations_does_not_decrypt(issue, world):
    acme = world[0]
    first, first_token = issue(ADA)
    _, second_token = issue(GRACE)
    swapped = {**claims_of(first_token), "invitee": claims_of(second_token)["invitee"]}
    forged = resign(swapped)
    rejected("hash_mismatch", forged)
    # Even with the database fooled into taking the forged token, the ciphertext is bound to its invitation.
    Invitation.objects.filter(pk=first.pk).update(token_hash=tokens.token_hash(forged))
    with pytest.raises(InvitationRejected) as caught:
        services.redeem_invitation(actor=None, token=forged)
    assert caught.value.code == "invalid_invitee_data"
    assert Invitation.objects.get(pk=first.pk).used_count == 0  # nothing was used up
    assert acme.code == "acme"


@committed
def test_revoked_and_client_states(issue, world):
    acme = world[0]
    invitation, token = issue()
    services.revoke_invitation(actor=None, invitation=invitation, reason="sent to the wrong person")
    rejected("revoked", token)
    _, other = issue(GRACE)
    client_services.deactivate_client(actor=None, client=acme)
    rejected("client_inactive", other)
    client_services.erase_client(actor=None, client=acme, confirm="acme")
    rejected("client_erased", other)
    with pytest.raises(InvitationRejected) as undecryptable:  # the personal data inside is gone for good
        tokens.decrypt_invitee(claims_of(other), client_keys(acme))
    assert undecryptable.value.code == "client_erased"
    with pytest.raises(InvitationRejected) as caught:
        services.redeem_invitation(actor=None, token=other)
    assert caught.value.code == "client_erased"


@db
def test_expiry_with_time_travel(issue):
    invitation, token = issue(expires_in=timedelta(hours=2))
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        assert services.validate_invitation(token=token) == invitation
    with time_machine.travel(timezone.now() + timedelta(hours=3)):
        rejected("expired", token)
        assert services.expire_invitations(actor=None) == 1
    assert Invitation.objects.get().status == "expired"


@db
def test_the_token_verifies_with_jwcrypto_through_the_jwks(client, issue):
    invitation, token = issue()
    keyset = jwk.JWKSet.from_json(client.get("/.well-known/jwks.json").content)
    verified = jwcrypto_jwt.JWT(jwt=token, key=keyset, algs=["EdDSA"])
    assert json.loads(verified.claims)["sub"] == str(invitation.pk)


@db
def test_a_rotated_signing_key_keeps_its_tokens_valid(issue):
    from vault import services as vault_services

    _, token = issue()
    vault_services.rotate_signing_key(actor=None)
    tokens.public_keys.clear()
    assert services.validate_invitation(token=token)
