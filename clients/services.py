"""Every write to clients and applications: validated, in one transaction, with its audit event."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import ngettext

from audit.services import diff, record
from clients import apikeys
from clients.configuration import configuration_errors
from clients.models import ApiKey, Application, Client, Tier, normalise_code, normalise_domain
from clients.selectors import (
    client_usage,
    features_not_in_tier,
    get_application,
    get_client,
    get_tier,
    tier_fit_problems,
)
from config.errors import InvalidInput, Refused
from config.validation import conflicts_as, full_clean, refuse_control_characters
from vault import services as vault_services
from vault.selectors import is_erased

CLIENT_FIELDS = ("code", "legal_name", "domain", "region", "tier_id", "status")
APPLICATION_FIELDS = ("app_code", "name", "configuration", "features", "status")


def _atomic():
    return transaction.atomic(using=settings.CONSOLE_DB_ALIAS)


def _snapshot(instance, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name.removesuffix("_id"): getattr(instance, name) for name in fields}


def _tier(tier: Tier | str) -> Tier:
    return tier if isinstance(tier, Tier) else get_tier(tier)


def create_client(*, actor, code: str, legal_name: str, domain: str, region: str, tier: Tier | str = "free") -> Client:
    refuse_control_characters(code=code, legal_name=legal_name, domain=domain)
    client = Client(
        code=normalise_code(code),
        legal_name=(legal_name or "").strip(),
        domain=normalise_domain(domain),
        region=(region or "").strip().upper(),
        tier=_tier(tier),
    )
    with _atomic():
        full_clean(client)
        with conflicts_as(f"A client with code '{client.code}' or domain '{client.domain}' already exists."):
            client.save(force_insert=True)
        key = vault_services.add_data_key_version(client)
        # One event for the operation: the client and its first data key.
        changes = diff({}, _snapshot(client, CLIENT_FIELDS)) | {
            "data_key": {"old": None, "new": {"version": key.version, "master_key_id": key.master_key_id}}
        }
        record(actor=actor, action="client.created", client=client, target=client, changes=changes)
    return client


def update_client(
    *,
    actor,
    client: Client,
    legal_name: str | None = None,
    domain: str | None = None,
    region: str | None = None,
    tier: Tier | str | None = None,
) -> Client:
    """Change a client's details or tier. A tier its current usage does not fit is refused with the reasons."""
    refuse_control_characters(legal_name=legal_name, domain=domain)
    with _atomic():
        client = get_client(str(client.pk), for_update=True)
        before = _snapshot(client, CLIENT_FIELDS)
        if legal_name is not None:
            client.legal_name = legal_name.strip()
        if domain is not None:
            client.domain = normalise_domain(domain)
        if region is not None:
            client.region = region.strip().upper()
        if tier is not None:
            new_tier = _tier(tier)
            if new_tier.pk != client.tier_id and (problems := tier_fit_problems(client_usage(client), new_tier)):
                raise Refused(
                    f"Client {client.code} does not fit tier {new_tier.code}: {'; '.join(problems)}.",
                    code="tier_does_not_fit",
                )
            client.tier = new_tier
        full_clean(client)
        changes = diff(before, _snapshot(client, CLIENT_FIELDS))
        if changes:
            with conflicts_as(f"Another client already uses the domain '{client.domain}'."):
                client.save()
            record(actor=actor, action="client.updated", client=client, target=client, changes=changes)
    return client


def _set_status(*, actor, client: Client, status: str, action: str, reason: str = "") -> Client:
    refuse_control_characters(reason=reason)
    with _atomic():
        client = get_client(str(client.pk), for_update=True)
        if client.status == status:
            return client  # already there: re-running is safe and records nothing
        changes = _change_status(client, status)
        if reason:
            changes["reason"] = reason
        record(actor=actor, action=action, client=client, target=client, changes=changes)
    return client


def _change_status(client: Client, status: str) -> dict:
    """Write the locked client's new status; its change for the audit event the caller records."""
    before = client.status
    client.status = status
    client.deactivated_at = timezone.now() if status == Client.Status.DEACTIVATED else None
    client.save(update_fields=["status", "deactivated_at", "updated_at"])
    return {"status": {"old": before, "new": status}}


def deactivate_client(*, actor, client: Client, reason: str = "") -> Client:
    return _set_status(
        actor=actor, client=client, status=Client.Status.DEACTIVATED, action="client.deactivated", reason=reason
    )


def reactivate_client(*, actor, client: Client, reason: str = "") -> Client:
    if is_erased(client):
        raise Refused(f"Client {client.code} was erased; an erased client cannot be reactivated.", code="client_erased")
    return _set_status(
        actor=actor, client=client, status=Client.Status.ACTIVE, action="client.reactivated", reason=reason
    )


def erase_client(*, actor, client: Client, confirm: str) -> Client:
    """GDPR erasure by crypto-shredding: destroy the client's data keys and deactivate it, recorded as one
    `client.erased` event. The audit trail stays.

    Afterwards its secrets (and the personal data inside its outstanding invitation tokens) can
    never be decrypted again. `confirm` must repeat the client's code. Re-running is safe.
    """
    if (confirm or "").strip().lower() != client.code:
        raise InvalidInput(
            f"Erasure cannot be undone: confirm it by repeating the client's code ({client.code}).",
            code="confirmation_required",
            fields={"confirm": [f"Type {client.code} to confirm."]},
        )
    with _atomic():
        client = get_client(str(client.pk), for_update=True)
        if is_erased(client):
            return client
        # One event for the operation: the keys destroyed and the client deactivated.
        changes = {"data_keys": vault_services.shred_data_keys(client)}
        if client.status != Client.Status.DEACTIVATED:
            changes |= _change_status(client, Client.Status.DEACTIVATED)
        record(actor=actor, action="client.erased", client=client, target=client, changes=changes)
    return client


def configure_application(
    *,
    actor,
    client: Client,
    app_code: str,
    name: str | None = None,
    configuration: dict | None = None,
    features: list[str] | None = None,
    status: str | None = None,
) -> Application:
    """Create the client's application `app_code`, or update the fields given. Checks tier limits and features."""
    refuse_control_characters(app_code=app_code, name=name, features=features)
    app_code = normalise_code(app_code)
    with _atomic():
        # The client row lock serialises concurrent creations against max_applications.
        client = get_client(str(client.pk), for_update=True)
        if client.status == Client.Status.DEACTIVATED:
            raise Refused(f"Client {client.code} is deactivated; reactivate it first.", code="client_deactivated")
        application = Application.objects.filter(client_id=client.pk, app_code=app_code).first()
        creating = application is None
        if creating:
            if client_usage(client).applications >= client.tier.max_applications:
                raise Refused(
                    f"Tier {client.tier.code} allows {client.tier.max_applications} "
                    f"{ngettext('application', 'applications', client.tier.max_applications)}; "
                    f"client {client.code} has reached the limit.",
                    code="application_limit",
                )
            application = Application(client=client, app_code=app_code, name=name or app_code.replace("-", " ").title())
        before = {} if creating else _snapshot(application, APPLICATION_FIELDS)
        if name is not None:
            application.name = name.strip()
        if configuration is not None:
            if errors := configuration_errors(configuration):
                raise InvalidInput("; ".join(errors), code="invalid_configuration", fields={"configuration": errors})
            application.configuration = configuration
        if features is not None:
            features = sorted({feature.strip() for feature in features if feature.strip()})
            if missing := features_not_in_tier(features, client.tier):
                raise InvalidInput(
                    f"Feature(s) {', '.join(missing)} are not in tier {client.tier.code} "
                    f"(available: {', '.join(client.tier.features)}).",
                    code="feature_not_in_tier",
                    fields={"features": [f"not in tier: {', '.join(missing)}"]},
                )
            application.features = features
        if status is not None:
            application.status = status
        full_clean(application)
        changes = diff(before, _snapshot(application, APPLICATION_FIELDS))
        if changes:
            with conflicts_as(f"Client {client.code} already has an application '{app_code}'."):
                application.save()
            action = "application.created" if creating else "application.updated"
            record(actor=actor, action=action, client=client, target=application, changes=changes)
    return application


def create_api_key(
    *,
    actor,
    client: Client,
    name: str,
    scopes: list[str],
    application: Application | str | None = None,
    expires_at=None,
    rate_limit: int | None = None,
) -> tuple[ApiKey, str]:
    """Issue an API key for the client. Returns the key row and the full key, which is shown once, never stored."""
    refuse_control_characters(name=name)
    with _atomic():
        client = get_client(str(client.pk), for_update=True)
        if client.status != Client.Status.ACTIVE:
            raise Refused(f"Client {client.code} is {client.status}; API keys are issued to active clients only.",
                          code="client_not_active")  # fmt: skip
        if isinstance(application, str):
            application = get_application(client, application)
        if expires_at is not None and expires_at <= timezone.now():
            raise InvalidInput("The expiry must be in the future.", fields={"expires_at": ["Must be in the future."]})
        full_key, prefix, secret_hash = apikeys.generate()
        api_key = ApiKey(
            client=client,
            application=application,
            name=(name or "").strip(),
            prefix=prefix,
            secret_hash=secret_hash,
            scopes=sorted(set(scopes or [])),
            expires_at=expires_at,
            rate_limit=rate_limit,
        )
        full_clean(api_key, exclude=["prefix", "secret_hash"])
        with conflicts_as(f"Client {client.code} already has an API key named '{api_key.name}'."):
            api_key.save(force_insert=True)
        changes = {
            "name": api_key.name,
            "prefix": prefix,
            "scopes": api_key.scopes,
            "application": application.app_code if application else None,
            "expires_at": expires_at,
            "rate_limit": rate_limit,
        }
        record(actor=actor, action="api_key.created", client=client, target=api_key, changes=diff({}, changes))
    return api_key, full_key


def set_api_key_rate_limit(*, actor, api_key: ApiKey, rate_limit: int | None) -> ApiKey:
    """Set a key's requests per minute (None: the FLOWS_API_RATE_LIMIT_PER_MINUTE default), from its next request."""
    with _atomic():
        api_key = ApiKey.objects.select_for_update().select_related("client").get(pk=api_key.pk)
        if api_key.rate_limit == rate_limit:
            return api_key
        before, api_key.rate_limit = api_key.rate_limit, rate_limit
        full_clean(api_key, exclude=["prefix", "secret_hash"])
        api_key.save(update_fields=["rate_limit"])
        record(
            actor=actor,
            action="api_key.rate_limit_changed",
            client=api_key.client,
            target=api_key,
            changes={"rate_limit": {"old": before, "new": rate_limit}},
        )
    return api_key


def revoke_api_key(*, actor, api_key: ApiKey) -> ApiKey:
    """Revoke a key at once. Revoking a revoked key changes nothing and records nothing."""
    with _atomic():
        api_key = ApiKey.objects.select_for_update().select_related("client").get(pk=api_key.pk)
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
            record(
                actor=actor,
                action="api_key.revoked",
                client=api_key.client,
                target=api_key,
                changes={"revoked_at": {"old": None, "new": api_key.revoked_at}},
            )
    return api_key
