"""Reads about invitations: seat usage against the tier, lookups by code."""

from __future__ import annotations

import contextlib
import uuid

from django.db.models import Case, IntegerField, Q, Sum, When

from clients.models import Client
from config.errors import NotFound
from invitations.models import Invitation


def seats_used(client: Client) -> int:
    """Seats held against the tier's max_users: every use a pending invitation still allows, plus every use made.

    A pending invitation reserves all its uses (`max_uses`); any other counts the people who
    actually redeemed it (`used_count`).
    """
    return (
        Invitation.objects.filter(client_id=client.pk).aggregate(
            seats=Sum(
                Case(
                    When(status=Invitation.Status.PENDING, then="max_uses"),
                    default="used_count",
                    output_field=IntegerField(),
                )
            )
        )["seats"]
        or 0
    )


def get_invitation(reference: str) -> Invitation:
    """An invitation by its support code (INV-…) or id."""
    reference = (reference or "").strip()
    lookup = Q(code=reference.upper())
    with contextlib.suppress(ValueError):  # a code, not an id
        lookup |= Q(pk=uuid.UUID(reference))
    invitation = Invitation.objects.select_related("client", "application").filter(lookup).first()
    if invitation is None:
        raise NotFound(f"No invitation '{reference}'.", code="invitation_not_found")
    return invitation


def recent_invitations(client: Client, limit: int = 10):
    return Invitation.objects.filter(client_id=client.pk).select_related("application").order_by("-created_at")[:limit]
