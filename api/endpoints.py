"""The tenant API's endpoints: thin views over the clients and invitations services and selectors."""

from __future__ import annotations

from typing import Literal

from ninja import Path, Query, Router

from api.auth import ApiKeyAuth, ApiPrincipal
from api.schemas import (
    APP_CODE_REGEX,
    ApplicationOut,
    ClientOut,
    InvitationPageOut,
    Problem,
    RedemptionOut,
    TokenIn,
    ValidationOut,
)
from api.selectors import MAX_PAGE_SIZE, PAGE_SIZE, invitation_page
from clients.models import Application, Client
from clients.selectors import get_application
from config.errors import NotFound
from invitations import tokens
from invitations.models import Invitation
from invitations.services import redeem_invitation, validate_invitation
from invitations.tokens import InvitationRejected

router = Router()

CONFIGURATION_READ = ApiKeyAuth("configuration:read")
INVITATIONS_REDEEM = ApiKeyAuth("invitations:redeem")
INVITATIONS_READ = ApiKeyAuth("invitations:read")
ERRORS = {400: Problem, 401: Problem, 403: Problem, 429: Problem, 500: Problem}
BODY_ERRORS = {**ERRORS, 413: Problem}


def _client(principal: ApiPrincipal) -> Client:
    # Under RLS the tenant role sees its own client row only; the explicit filter says which.
    return Client.objects.select_related("tier").get(pk=principal.client_id)


def _applications(principal: ApiPrincipal):
    applications = Application.objects.filter(client_id=principal.client_id)
    if principal.application_id is not None:
        applications = applications.filter(pk=principal.application_id)
    return applications.order_by("app_code")


def _invitation(invitation: Invitation) -> dict:
    return {
        "id": invitation.pk,
        "code": invitation.code,
        "application": invitation.application.app_code,
        "status": invitation.status,
        "max_uses": invitation.max_uses,
        "used_count": invitation.used_count,
        "permissions": invitation.permissions,
        "expires_at": invitation.expires_at,
        "created_at": invitation.created_at,
        "accepted_at": invitation.accepted_at,
    }


def _check_token_is_for(principal: ApiPrincipal, token: str) -> None:
    """Refuse, before anything is read or changed, a token of another client or, for a key bound to an
    application, of another application."""
    claims = tokens.decode(token)
    if claims["client"] != _client(principal).code:
        raise InvitationRejected("wrong_client", stage="database")
    if principal.application_id is not None and not _applications(principal).filter(app_code=claims["app"]).exists():
        raise InvitationRejected("wrong_application", "The invitation is for another application.", stage="database")


@router.get(
    "/client",
    auth=CONFIGURATION_READ,
    response={200: ClientOut, **ERRORS},
    url_name="get_client",
    tags=["client"],
    summary="The calling client",
)
def get_client(request):
    """The calling client: its details, tier limits and the features its tier allows."""
    return _client(request.auth)


@router.get(
    "/applications",
    auth=CONFIGURATION_READ,
    response={200: list[ApplicationOut], **ERRORS},
    url_name="list_applications",
    summary="The client's applications",
    tags=["client"],
)
def list_applications(request):
    """The client's applications and their configuration (only its own for a key bound to one)."""
    return list(_applications(request.auth))


@router.get(
    "/applications/{app_code}",
    auth=CONFIGURATION_READ,
    response={200: ApplicationOut, 404: Problem, **ERRORS},
    url_name="get_application",
    summary="One application",
    tags=["client"],
)
def get_application_view(request, app_code: str = Path(..., pattern=APP_CODE_REGEX, examples=["offboarding"])):
    """One application by its app_code. Another client's application and a missing one are the same 404."""
    principal = request.auth
    application = get_application(_client(principal), app_code)
    if principal.application_id not in (None, application.pk):
        raise NotFound(
            f"Client {application.client.code} has no application '{app_code}'.", code="application_not_found"
        )
    return application


@router.post(
    "/invitations/validate",
    auth=INVITATIONS_REDEEM,
    response={200: ValidationOut, **BODY_ERRORS},
    url_name="validate_invitation",
    summary="Validate an invitation token",
    tags=["invitations"],
)
def validate_invitation_view(request, payload: TokenIn):
    """Whether a token may be redeemed now, and the invitation's metadata. Changes nothing; no personal data."""
    _check_token_is_for(request.auth, payload.token)
    return {"invitation": _invitation(validate_invitation(token=payload.token))}


@router.post(
    "/invitations/redeem",
    auth=INVITATIONS_REDEEM,
    response={200: RedemptionOut, **BODY_ERRORS},
    url_name="redeem_invitation",
    summary="Redeem an invitation token (once)",
    tags=["invitations"],
)
def redeem_invitation_view(request, payload: TokenIn):
    """Use the invitation once and return the invitee's data: exactly one of concurrent redemptions succeeds."""
    _check_token_is_for(request.auth, payload.token)
    redemption = redeem_invitation(actor=request.auth, token=payload.token)
    return {"invitation": _invitation(redemption.invitation), "invitee": redemption.invitee}


@router.get(
    "/invitations",
    auth=INVITATIONS_READ,
    response={200: InvitationPageOut, **ERRORS},
    url_name="list_invitations",
    summary="The client's invitations (metadata, paginated)",
    tags=["invitations"],
)
def list_invitations(
    request,
    status: Literal["pending", "accepted", "expired", "revoked"] | None = None,
    application: str | None = Query(None, pattern=APP_CODE_REGEX),
    cursor: str | None = Query(None, max_length=200),
    limit: int = Query(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
):
    """The client's invitations, newest first, metadata only; follow `next_cursor` for the next page."""
    principal = request.auth
    page = invitation_page(
        client_id=principal.client_id,
        application_id=principal.application_id,
        app_code=application,
        status=status,
        cursor=cursor,
        limit=limit,
    )
    return {"items": [_invitation(invitation) for invitation in page.items], "next_cursor": page.next_cursor}
