"""Request context: a request id (X-Request-ID when well-formed, else generated), logged, echoed and audited."""

import logging
import re
import uuid

from audit.context import Origin, current_origin, reset_origin, set_origin

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get("X-Request-ID", "")
        request.request_id = supplied if _VALID_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        token = set_origin(
            Origin(
                ip=request.META.get("REMOTE_ADDR") or None,
                user_agent=request.headers.get("User-Agent", "")[:400],
                request_id=request.request_id,
            )
        )
        try:
            response = self.get_response(request)
        finally:
            reset_origin(token)
        response["X-Request-ID"] = request.request_id
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.request_id = current_origin().request_id or "-"
        return True
