"""Public vault endpoints: the JWKS that lets anyone verify invitation tokens without a database."""

import hashlib

from django.http import HttpResponse
from django.utils.cache import get_conditional_response
from django.views.decorators.http import require_GET

from vault import signing
from vault.selectors import published_signing_keys

JWKS_MAX_AGE = 300  # verifiers refetch on an unknown kid; a rotated-out key is published for days


@require_GET
def jwks(request):
    """RFC 7517 JWK Set of the active and retiring signing keys (public halves), cacheable."""
    body = signing.jwks_json(published_signing_keys())
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    response = HttpResponse(body, content_type="application/jwk-set+json")
    response["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    response["ETag"] = etag
    response["Access-Control-Allow-Origin"] = "*"  # public keys: any verifier may fetch them from a browser
    return get_conditional_response(request, etag=etag, response=response)
