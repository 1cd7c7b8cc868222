"""The product's URLs plus the benchmark's bare views: the tenant API's work without the framework.

`/bench/bare/…` does what `/api/v1/…` does for the same request — the tenant transaction as
`flows_app` under RLS, the same selectors and services, the same JSON — without django-ninja (no
routing, schema validation or rendering), without authentication and rate limit (the client is
named by an `X-Bench-Client` header and trusted) and without metering. Registered only here, in
the benchmark's own settings (`bench.api_settings`), never in `config.urls`.
"""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from api.endpoints import _applications, _check_token_is_for, _invitation
from clients.tenancy import tenant_context
from config.urls import urlpatterns as product_urlpatterns
from invitations.services import validate_invitation
from invitations.tokens import InvitationRejected

APPLICATION_FIELDS = ("app_code", "name", "status", "features", "configuration")


def _principal(request) -> SimpleNamespace:
    # What the API's principal carries that the views use: the client and no application binding.
    return SimpleNamespace(client_id=uuid.UUID(request.headers["X-Bench-Client"]), application_id=None)


@csrf_exempt  # as the API's views are
@require_POST
def bare_validate(request):
    principal = _principal(request)
    token = json.loads(request.body)["token"]
    with tenant_context(principal.client_id):
        try:
            _check_token_is_for(principal, token)
            invitation = validate_invitation(token=token)
        except InvitationRejected as rejected:
            return JsonResponse({"code": rejected.code}, status=400)
        return JsonResponse({"valid": True, "invitation": _invitation(invitation)})


@require_GET
def bare_applications(request):
    principal = _principal(request)
    with tenant_context(principal.client_id):
        rows = [{field: getattr(app, field) for field in APPLICATION_FIELDS} for app in _applications(principal)]
    return JsonResponse(rows, safe=False)


urlpatterns = [
    *product_urlpatterns,
    path("bench/bare/invitations/validate", bare_validate),
    path("bench/bare/applications", bare_applications),
]
