"""Reads about clients: lookup by code or id, usage against the tier, status summaries."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from django.db.models import Count

from audit.models import AuditEvent
from clients.models import ApiKey, Application, Client, Tier
from config.errors import InvalidInput, NotFound, excerpt

# What a reference can be before it is looked up (whole strings: `fullmatch`, as `$` would let a final newline
# through): anything else names nothing, and is answered without a query.
CLIENT_CODE = re.compile(r"[a-z0-9-]{2,50}")
APP_CODE = re.compile(r"[a-z][a-z0-9-]{1,49}")
API_KEY_PREFIX = re.compile(r"[0-9a-f]{12}")
TIER_CODE = re.compile(r"[-a-z0-9_]{1,30}")


def as_uuid(reference: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(reference)
    except ValueError:
        return None


def get_client(reference: str, *, for_update: bool = False) -> Client:
    """A client by its code or its id; NotFound with the reference when there is none."""
    reference = (reference or "").strip()
    queryset = Client.objects.select_related("tier")
    if for_update:
        queryset = queryset.select_for_update(of=("self",))
    if (client_id := as_uuid(reference)) is not None:
        lookup = {"pk": client_id}
    elif CLIENT_CODE.fullmatch(reference.lower()):
        lookup = {"code": reference.lower()}
    else:
        raise NotFound(
            f"No client with code or id '{excerpt(reference)}': a code is 2 to 50 letters, digits or hyphens.",
            code="client_not_found",
        )
    try:
        return queryset.get(**lookup)
    except Client.DoesNotExist:
        raise NotFound(f"No client with code or id '{reference}'.", code="client_not_found") from None


def get_application(client: Client, app_code: str) -> Application:
    app_code = (app_code or "").strip().lower()
    try:
        if not APP_CODE.fullmatch(app_code):
            raise Application.DoesNotExist
        return Application.objects.get(client_id=client.pk, app_code=app_code)
    except Application.DoesNotExist:
        message = f"Client {client.code} has no application '{excerpt(app_code)}'."
        raise NotFound(message, code="application_not_found") from None


def get_api_key(client: Client, reference: str) -> ApiKey:
    """One of the client's API keys by its prefix (or the full key) or its id."""
    reference = (reference or "").strip()
    prefix = reference.removeprefix("flk_").split("_", 1)[0]
    try:
        if (key_id := as_uuid(reference)) is not None:
            lookup = {"pk": key_id}
        elif API_KEY_PREFIX.fullmatch(prefix):
            lookup = {"prefix": prefix}
        else:
            raise ApiKey.DoesNotExist
        return ApiKey.objects.select_related("client").get(client_id=client.pk, **lookup)
    except ApiKey.DoesNotExist:
        message = f"Client {client.code} has no API key '{excerpt(prefix or reference)}'."
        raise NotFound(message, code="api_key_not_found") from None


def get_tier(code: str) -> Tier:
    code = (code or "").strip().lower()
    try:
        if not TIER_CODE.fullmatch(code):
            raise Tier.DoesNotExist
        return Tier.objects.get(code=code)
    except Tier.DoesNotExist:
        choices = ", ".join(Tier.objects.values_list("code", flat=True))
        raise InvalidInput(f"Unknown tier '{excerpt(code)}'. Choose one of: {choices}.", code="unknown_tier") from None


@dataclass
class Usage:
    applications: int = 0
    features_by_application: dict[str, list[str]] = field(default_factory=dict)
    seats: int = 0  # invitation uses pending or made, against the tier's max_users

    @property
    def features(self) -> set[str]:
        return {feature for features in self.features_by_application.values() for feature in features}


def client_usage(client: Client) -> Usage:
    from invitations.selectors import seats_used  # noqa: PLC0415 - invitations build on clients, not the reverse

    rows = Application.objects.filter(client_id=client.pk).values_list("app_code", "features")
    return Usage(applications=len(rows), features_by_application=dict(rows), seats=seats_used(client))


def features_not_in_tier(features, tier: Tier) -> list[str]:
    return sorted(set(features) - set(tier.features))


def tier_fit_problems(usage: Usage, tier: Tier) -> list[str]:
    """Why a client's current usage does not fit `tier`; empty when it fits."""
    problems = []
    if usage.applications > tier.max_applications:
        problems.append(f"{usage.applications} applications, the tier allows {tier.max_applications}")
    if usage.seats > tier.max_users:
        problems.append(f"{usage.seats} seats held by invitations, the tier allows {tier.max_users} users")
    for app_code, features in sorted(usage.features_by_application.items()):
        if missing := features_not_in_tier(features, tier):
            problems.append(f"application {app_code} uses {', '.join(missing)}, not in the tier")
    return problems


def clients_with_counts():
    return Client.objects.select_related("tier").annotate(application_count=Count("applications"))


def recent_events(client: Client, limit: int = 10):
    return AuditEvent.objects.filter(client_id=client.pk).order_by("-occurred_at", "-id")[:limit]


def status_event(client: Client):
    """The audit event that put the client in its current state (deactivated, erased), or None: who, when, why."""
    if client.status == Client.Status.ACTIVE:
        return None
    actions = ["client.deactivated", "client.erased"]
    return AuditEvent.objects.filter(client_id=client.pk, action__in=actions).order_by("-occurred_at", "-id").first()
