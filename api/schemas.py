"""Request and response schemas of the tenant API (they are the OpenAPI document's components)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from clients.models import APP_CODE_PATTERN


class TierOut(Schema):
    code: str
    name: str
    max_users: int
    storage_gb: int
    max_applications: int
    features: list[str]


class ClientOut(Schema):
    code: str = Field(examples=["acme"])
    legal_name: str
    domain: str = Field(examples=["acme-corp.thepia.net"])
    region: str
    status: str
    tier: TierOut


class ApplicationOut(Schema):
    app_code: str = Field(examples=["offboarding"])
    name: str
    status: str
    features: list[str]
    configuration: dict[str, Any]


class TokenIn(Schema):
    token: str = Field(min_length=1, max_length=16_384, description="The invitation token (a compact JWS).")


class InvitationOut(Schema):
    """An invitation's metadata: never the invitee's personal data."""

    id: uuid.UUID
    code: str = Field(examples=["INV-7K2M9Q"])
    application: str = Field(description="The application's app_code.")
    status: str
    max_uses: int
    used_count: int
    permissions: list[str]
    expires_at: datetime
    created_at: datetime
    accepted_at: datetime | None


class ValidationOut(Schema):
    valid: Literal[True] = True
    invitation: InvitationOut


class InviteeOut(Schema):
    name: str
    company_email: str
    private_email: str = ""


class RedemptionOut(Schema):
    invitation: InvitationOut
    invitee: InviteeOut = Field(description="Returned by this one successful redemption only: it is stored nowhere.")


class InvitationPageOut(Schema):
    items: list[InvitationOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class FieldError(Schema):
    field: str
    location: str
    message: str


class Problem(Schema):
    """RFC 9457 problem details (`application/problem+json`)."""

    type: str = Field(examples=["tag:thepia.net,2026:flows-api/problems/unauthorized"])
    title: str = Field(examples=["Unauthorized"])
    status: int = Field(examples=[401])
    detail: str
    code: str = Field(examples=["unauthorized"], description="Stable, the same the commands print; see docs/api.md.")
    errors: list[FieldError] | None = None
    request_id: str | None = None


# An app code as the database allows it (clients.Application's check constraint).
APP_CODE_REGEX = APP_CODE_PATTERN.replace("*$", "{1,49}$")
