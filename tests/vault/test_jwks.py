"""The JWKS verifies tokens signed with every published key — checked with jwcrypto, an independent JOSE library."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from jwcrypto import jwk, jws
from jwcrypto import jwt as jwcrypto_jwt

from vault import services, signing
from vault.models import SigningKey
from vault.selectors import active_signing_key

db = pytest.mark.django_db(databases="__all__")


def claims() -> dict:
    now = int(time.time())
    return {
        "iss": "https://console.thepia.net",
        "aud": "flows.thepia.net",
        "sub": "inv-1",
        "iat": now,
        "exp": now + 600,
    }


def verify(token: str, body: bytes) -> dict:
    keyset = jwk.JWKSet.from_json(body)
    verified = jwcrypto_jwt.JWT(jwt=token, key=keyset, algs=["EdDSA"])
    return json.loads(verified.claims)


@db
def test_tokens_from_the_active_and_the_retiring_key_verify_against_the_jwks(client):
    first = services.rotate_signing_key(actor=None)
    old_token = signing.sign(claims(), first)
    second = services.rotate_signing_key(actor=None)
    new_token = signing.sign(claims(), active_signing_key())
    assert active_signing_key() == second

    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jwk-set+json"
    assert "max-age=300" in response["Cache-Control"] and response["ETag"]
    body = response.content
    published = json.loads(body)["keys"]
    assert {key["kid"] for key in published} == {first.kid, second.kid}
    assert all(set(key) == {"kty", "crv", "x", "kid", "alg", "use"} for key in published)  # no private part
    assert all((key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA") for key in published)
    for key in published:  # the kid is the RFC 7638 thumbprint, as jwcrypto computes it
        assert jwk.JWK(**key).thumbprint() == key["kid"]

    assert verify(old_token, body)["sub"] == "inv-1"
    assert verify(new_token, body)["sub"] == "inv-1"
    assert client.get("/.well-known/jwks.json", HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


@db
def test_a_key_leaves_the_jwks_once_every_token_it_signed_has_expired(client):
    first = services.rotate_signing_key(actor=None)
    token = signing.sign(claims(), first)
    services.rotate_signing_key(actor=None)
    first.refresh_from_db()
    assert first.status == "retiring"
    assert first.publish_until >= timezone.now() + timedelta(days=29)

    SigningKey.objects.filter(pk=first.pk).update(publish_until=timezone.now() - timedelta(seconds=1))
    body = client.get("/.well-known/jwks.json").content
    assert first.kid not in body.decode()
    with pytest.raises(jwcrypto_jwt.JWTMissingKey):  # jwcrypto: no published key for this kid
        verify(token, body)
    services.rotate_signing_key(actor=None)  # the next rotation records it as retired
    first.refresh_from_db()
    assert first.status == "retired"


@db
def test_only_the_active_key_signs_and_a_forged_token_does_not_verify(client):
    first = services.rotate_signing_key(actor=None)
    services.rotate_signing_key(actor=None)
    first.refresh_from_db()
    with pytest.raises(Exception, match="only the active key signs"):
        signing.sign(claims(), first)
    token = signing.sign(claims(), active_signing_key())
    header, _payload, signature = token.split(".")
    forged = f"{header}.{signing.b64url(json.dumps({**claims(), 'sub': 'inv-2'}).encode())}.{signature}"
    published = json.loads(client.get("/.well-known/jwks.json").content)["keys"]
    active = next(key for key in published if key["kid"] == active_signing_key().kid)
    assert verify(token, json.dumps({"keys": [active]}))["sub"] == "inv-1"
    with pytest.raises(jws.InvalidJWSSignature):
        jwcrypto_jwt.JWT(jwt=forged, key=jwk.JWK(**active), algs=["EdDSA"])


@db
def test_an_empty_jwks_is_still_a_valid_key_set(client):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200 and json.loads(response.content) == {"keys": []}
    assert client.post("/.well-known/jwks.json").status_code == 405
