"""The tenant API object: authentication before the tenant transaction, problem details for every error, metering."""

from __future__ import annotations

import functools
import json
import logging
import traceback

from django.conf import settings
from django.db import transaction
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from api import problems
from api.auth import ApiPrincipal, definer_call
from api.auth import principal as authenticated
from api.endpoints import router
from api.metering import reclassify
from clients.tenancy import tenant_context
from config.errors import FlowsError
from invitations.tokens import InvitationRejected

log = logging.getLogger(__name__)

MAX_JSON_DEPTH = 32


class StrictJsonParser(Parser):
    """JSON bodies PostgreSQL and our code can hold: UTF-8, no NUL character, no lone surrogate, bounded nesting.

    What is wrong is kept on the request: ninja turns any parse failure into one generic 400.
    """

    def parse_body(self, request):
        try:
            data = json.loads(request.body.decode("utf-8"))
            _check_value(data, 0)
        except RecursionError:
            request.api_body_error = f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep."
            raise
        except (ValueError, UnicodeDecodeError) as error:
            request.api_body_error = str(error) if isinstance(error, _Unstorable) else "The body is not valid JSON."
            raise
        return data


class _Unstorable(ValueError):
    pass


def _check_value(value, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise _Unstorable(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise _Unstorable("The JSON body contains a NUL character, which no field can hold.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Unstorable("The JSON body contains a lone surrogate (\\ud800-\\udfff), which is not text.") from None


api = NinjaAPI(
    title="Flows tenant API",
    version="1",
    description=(
        "What a client's Flows applications call. Authenticate with `Authorization: Bearer flk_…` "
        "(an API key from `manage.py create_api_key`). Errors are RFC 9457 problem details with a stable "
        "`code`; see docs/api.md."
    ),
    urls_namespace="api-v1",
    parser=StrictJsonParser(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)


def _tenant_run(run):
    """Around each operation: authenticate, rate-limit and count the request with one definer call,
    then run the operation — validation, view, errors into problems — inside the key's tenant
    transaction; an error moves the request's count to its status class (`api.metering`)."""
    endpoint = run.__self__.view_func.__name__.removesuffix("_view")

    @functools.wraps(run)
    def wrapper(request, **kwargs):
        call = definer_call(request.headers.get("Authorization", ""), endpoint)
        if call is None:
            request.api_principal = None
            return run(request, **kwargs)  # the operation's auth answers 401
        failed = False
        # One round trip runs the definer call in its own transaction and opens the tenant
        # transaction of the key's client (clients.tenancy: tenant_context.from_definer).
        with tenant_context.from_definer(*call) as row:
            principal = request.api_principal = authenticated(row)
            if principal is None:
                return run(request, **kwargs)  # no tenant: the operation's auth answers 401
            response = _rate_limited(principal) if principal.rate.exceeded else run(request, **kwargs)
            failed = response.status_code >= 500
            if failed:
                # Nothing a failed request wrote is kept, and its transaction may be unusable.
                transaction.set_rollback(True, using=settings.TENANT_DB_ALIAS)
            else:
                reclassify(actor=principal, endpoint=endpoint, status=response.status_code)
        if failed:
            with tenant_context(principal.client_id):
                reclassify(actor=principal, endpoint=endpoint, status=response.status_code)
        for name, value in principal.rate.headers().items():
            response[name] = value
        return response

    return wrapper


def _rate_limited(principal: ApiPrincipal):
    response = problems.problem(
        429, "rate_limited", f"This API key may make {principal.rate.limit} requests a minute; retry after the window."
    )
    response["Retry-After"] = str(principal.rate.reset)
    return response


router.add_decorator(_tenant_run, mode="view")
api.add_router("", router)


@api.exception_handler(AuthenticationError)
def _unauthorized(request, error):
    return problems.unauthorized()


@api.exception_handler(FlowsError)
def _domain_error(request, error: FlowsError):
    # A rejection's message starts with its code, which the problem already carries.
    detail = error.message.split(": ", 1)[-1] if isinstance(error, InvitationRejected) else error.message
    extra = {"errors": _field_errors(error.fields)} if error.fields else {}
    return problems.problem(error.http_status, error.code, detail, **extra)


def _field_errors(fields: dict[str, list[str]]) -> list[dict]:
    return [{"field": name, "location": "request", "message": "; ".join(messages)} for name, messages in fields.items()]


@api.exception_handler(ValidationError)
def _invalid(request, error: ValidationError):
    # Field paths and messages only: pydantic's `input` would echo the value (a token, say).
    errors = [
        {
            "field": ".".join(str(part) for part in item.get("loc", ())[1:] if part not in ("payload",)) or "body",
            "location": str(item.get("loc", ("body",))[0]),
            "message": item.get("msg", "Invalid value."),
        }
        for item in error.errors
    ]
    return problems.problem(400, "invalid_request", "The request has invalid fields.", errors=errors)


@api.exception_handler(HttpError)
def _http_error(request, error: HttpError):
    if error.status_code == 400:
        detail = getattr(request, "api_body_error", "The body is not valid JSON.")
        return problems.problem(400, "malformed_body", detail)
    return problems.problem(error.status_code)


@api.exception_handler(Http404)
def _not_found(request, error):
    return problems.problem(404, "not_found", "There is no such resource.")


@api.exception_handler(Exception)
def _internal_error(request, error: Exception):
    return internal_error(request, error)


def internal_error(request, error: BaseException):
    """500 with the request id to quote, never a stack trace. The log has the frames (file, line,
    function) without the exception's message or source lines, which may carry a value from the request."""
    request_id = getattr(request, "request_id", "")
    frames = "\n".join(f"  {f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(error.__traceback__))
    log.error("tenant API request failed: %s\n%s", error.__class__.__name__, frames)
    return problems.problem(
        500, "internal_error", "The request failed on our side; quote the request id.", request_id=request_id
    )
