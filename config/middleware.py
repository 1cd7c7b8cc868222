"""Request context (a request id, logged, echoed and audited) and the refusal of input no database field can hold."""

import logging
import re
import uuid

from django.core.exceptions import ValidationError
from django.http import HttpResponseBadRequest
from django.template.loader import render_to_string

from audit.context import Origin, current_origin, reset_origin, set_origin
from config import routers

log = logging.getLogger(__name__)
BAD_VALUE_ERRORS = (ValidationError, ValueError, OverflowError)
FORM_URLENCODED = "application/x-www-form-urlencoded"
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
                user_agent=request.headers.get("User-Agent", "")[:400].replace("\x00", "\ufffd"),
                request_id=request.request_id,
            )
        )
        # Each request starts reading from the replica (where configured) until it writes.
        pin = routers.unpinned()
        try:
            response = self.get_response(request)
        finally:
            routers.reset_pin(pin)
            reset_origin(token)
        response["X-Request-ID"] = request.request_id
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.request_id = current_origin().request_id or "-"
        return True


_QUERY_STRING = re.compile(r"\?[^\s\"]*")


class QueryStringFilter(logging.Filter):
    """The development server's request lines without their query strings: a search term, a filter value or a token
    in a URL can be personal data or a secret (`"GET /admin/audit/auditevent/?q=… HTTP/1.1"` is logged as `?…`)."""

    def filter(self, record):
        if isinstance(record.args, tuple):
            record.args = tuple(_QUERY_STRING.sub("?…", arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.msg, str):
            record.msg = _QUERY_STRING.sub("?…", record.msg)
        return True


def _unstorable(request) -> str | None:
    """Where the request carries a NUL character (PostgreSQL text cannot hold one), or None."""
    if "\x00" in request.path:
        return "the address"
    sources = [("query string", request.GET)]
    if request.method == "POST" and request.content_type in (FORM_URLENCODED, "multipart/form-data"):
        sources.append(("form", request.POST))
    for where, data in sources:
        for key, values in data.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                name = key.replace("\x00", "\\0")[:60]
                return f"the {where} field '{name}'"
    return None


class RejectUnstorableInputMiddleware:
    """A NUL byte in any query string or form field is a 400 with a clear message, before any view
    (or the database, which would refuse it with an error the user would see as a 500) runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if where := _unstorable(request):
            return _bad_request(request, f"{where} contains a NUL character, which no field can hold")
        return self.get_response(request)

    def process_exception(self, request, exception):
        """A value the console pages cannot use — a year out of range in a date filter, an id that is
        no id in a selection or an autocomplete field — surfaces deep inside Django's admin as one of
        these; it is the request's fault, so it is a 400 (the view's transaction has rolled back)."""
        if not request.path.startswith("/admin/") or not isinstance(exception, BAD_VALUE_ERRORS):
            return None
        log.warning("refused a request with a value the admin cannot use (%s)", exception.__class__.__name__)
        return _bad_request(
            request, "it carries a value the console cannot use (an id, a date or a number out of range)"
        )


def _bad_request(request, reason: str):
    from django.contrib import admin  # noqa: PLC0415 - the admin site is configured by the URLconf

    context = {"message": f"The request was refused: {reason}.", "site_header": admin.site.site_header}
    return HttpResponseBadRequest(render_to_string("400.html", context, request=request))
