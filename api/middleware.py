"""Everything under /api/ answers problem details: oversized bodies, unknown routes, and any error response or
exception that did not come from the API's own handlers."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404

from api import problems

API_PREFIX = "/api/"


class ApiProblemMiddleware:
    """Placed right after the request id middleware, so it sees every response of the layers inside it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return problems.problem(400, "invalid_request", "The Content-Length header is not a number.")
        if length > settings.FLOWS_API_MAX_BODY_BYTES:
            return problems.problem(
                413, "payload_too_large", f"The body is over {settings.FLOWS_API_MAX_BODY_BYTES} bytes."
            )
        response = self.get_response(request)
        if response.status_code >= 400 and not problems.is_problem(response):
            replaced = problems.problem(response.status_code)
            for header in ("Allow", "Retry-After"):
                if header in response:
                    replaced[header] = response[header]
            response = replaced
        # Answers carry tenant data (a redemption carries personal data): never kept by a cache.
        response["Cache-Control"] = "no-store"
        return response

    def process_exception(self, request, exception):
        # Django answers these itself (404, 403, 400); __call__ turns the answer into a problem.
        if isinstance(exception, Http404 | PermissionDenied | BadRequest | SuspiciousOperation):
            return None
        if request.path.startswith(API_PREFIX):
            from api.api import internal_error  # noqa: PLC0415 - the API module imports the URLconf's views

            return internal_error(request, exception)
        return None
