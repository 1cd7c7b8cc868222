"""Tier (global), Client (the tenant) and Application (a client's Flows application)."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.core.validators import (
    DomainNameValidator,
    MaxLengthValidator,
    MaxValueValidator,
    MinLengthValidator,
    MinValueValidator,
    RegexValidator,
)
from django.db import models
from django.db.models.functions import Lower

from clients.constraints import TenantForeignKey

CODE_PATTERN = r"^[a-z0-9-]+$"
APP_CODE_PATTERN = r"^[a-z][a-z0-9-]*$"


def normalise_code(value: str | None) -> str:
    """Codes are case-insensitive on input and stored lowercase: ' ACME ' is 'acme'."""
    return (value or "").strip().lower()


def normalise_domain(value: str | None) -> str:
    """Hostnames are case-insensitive and may be written fully qualified: 'Acme.Example.' is 'acme.example'."""
    return (value or "").strip().lower().rstrip(".")


class Tier(models.Model):
    """A subscription tier: limits and the features a client's applications may use. Global, not per client."""

    code = models.SlugField(primary_key=True, max_length=30)
    name = models.CharField(max_length=100)
    rank = models.PositiveSmallIntegerField(help_text="Order from smallest to largest tier.")
    max_users = models.PositiveIntegerField()
    storage_gb = models.PositiveIntegerField()
    max_applications = models.PositiveIntegerField()
    features = ArrayField(models.CharField(max_length=50), default=list, blank=True)

    class Meta:
        ordering = ["rank"]

    def __str__(self):
        return self.name


class Client(models.Model):
    """A client company: the tenant. Every tenant row in the database belongs to exactly one."""

    tenant_key = "id"  # RLS filters this table on its own id (DESIGN §4)

    class Region(models.TextChoices):
        EU = "EU", "European Union"
        US = "US", "United States"
        APAC = "APAC", "Asia-Pacific"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        DEACTIVATED = "deactivated", "Deactivated"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.CharField(
        max_length=50,
        unique=True,
        validators=[
            MinLengthValidator(2),
            MaxLengthValidator(50),
            RegexValidator(CODE_PATTERN, "Use lowercase letters, digits and hyphens only."),
        ],
        help_text="Short stable identifier, e.g. acme. 2 to 50 lowercase letters, digits or hyphens.",
    )
    legal_name = models.CharField(max_length=200)
    domain = models.CharField(
        max_length=253,
        unique=True,
        validators=[DomainNameValidator(accept_idna=False)],
        help_text="The client's Flows hostname, e.g. acme-corp.thepia.net.",
    )
    region = models.CharField(max_length=8, choices=Region.choices)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="clients")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=models.Q(code__regex=r"^[a-z0-9-]{2,50}$"), name="client_code_format"),
            models.CheckConstraint(condition=models.Q(domain=Lower("domain")), name="client_domain_lowercase"),
            models.CheckConstraint(condition=models.Q(region__in=["EU", "US", "APAC"]), name="client_region_valid"),
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "suspended", "deactivated"]), name="client_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["status", "code"]), models.Index(fields=["tier", "code"])]
        permissions = [
            ("erase_client", "Can erase a client (crypto-shredding)"),
            # Platform-wide roles: without it a staff user sees only the clients granted to them.
            ("access_all_clients", "Can see every client, not only granted ones"),
        ]

    def __str__(self):
        return self.code

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Application(models.Model):
    """One Flows application (onboarding, offboarding, …) configured for one client."""

    tenant_key = "client_id"

    class Status(models.TextChoices):
        ENABLED = "enabled", "Enabled"
        DISABLED = "disabled", "Disabled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="applications")
    app_code = models.CharField(
        max_length=50,
        validators=[
            MinLengthValidator(2),
            RegexValidator(APP_CODE_PATTERN, "Start with a letter; use lowercase letters, digits and hyphens."),
        ],
        help_text="e.g. onboarding, offboarding. Unique within the client.",
    )
    name = models.CharField(max_length=200)
    configuration = models.JSONField(default=dict, blank=True, help_text="See docs/applications.md for the shape.")
    features = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ENABLED)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["client__code", "app_code"]
        constraints = [
            models.UniqueConstraint(fields=["client", "app_code"], name="application_unique_code_per_client"),
            # Target of composite foreign keys from other tenant tables: (client_id, id).
            models.UniqueConstraint(fields=["client", "id"], name="application_client_id_key"),
            models.CheckConstraint(
                condition=models.Q(app_code__regex=r"^[a-z][a-z0-9-]{1,49}$"), name="application_code_format"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["enabled", "disabled"]), name="application_status_valid"
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.app_code})"


class ApiKey(models.Model):
    """A Flows application's credential for the tenant API. Only a hash of the secret is stored.

    The full key, `flk_<prefix>_<secret>`, is shown once when created. `prefix` is public: it
    names the key in logs, lists and support conversations and finds the row on authentication.
    """

    tenant_key = "client_id"

    class Scope(models.TextChoices):
        CONFIGURATION_READ = "configuration:read", "Read the client's configuration"
        INVITATIONS_REDEEM = "invitations:redeem", "Validate and redeem invitations"
        INVITATIONS_READ = "invitations:read", "List the client's invitations"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="api_keys")
    # Composite foreign key (client_id, application_id): see TenantForeignKey below.
    application = models.ForeignKey(
        Application,
        # The composite key is ON DELETE RESTRICT in the database; DO_NOTHING keeps Django's collector from
        # reading API keys when an application is deleted (the app role may not read them at all).
        on_delete=models.DO_NOTHING,
        related_name="api_keys",
        null=True,
        blank=True,
        db_constraint=False,
        db_index=False,  # covered by apikey_client_application
        help_text="Optional: limit the key to one of the client's applications.",
    )
    name = models.CharField(max_length=100, help_text="What uses this key, e.g. 'offboarding production'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = ArrayField(models.CharField(max_length=40, choices=Scope.choices), default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    rate_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(1_000_000)],
        help_text="Requests per minute; empty means the FLOWS_API_RATE_LIMIT_PER_MINUTE default.",
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["client__code", "name"]
        constraints = [
            models.UniqueConstraint(fields=["client", "name"], name="apikey_unique_name_per_client"),
            TenantForeignKey(field="application", name="apikey_application_same_client"),
            models.CheckConstraint(condition=~models.Q(scopes=[]), name="apikey_has_scopes"),
        ]
        indexes = [models.Index(fields=["client", "application"], name="apikey_client_application")]

    def __str__(self):
        return f"{self.name} ({self.prefix})"

    def is_usable(self, now) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class JobLock(models.Model):
    """One row per scheduled job (e.g. `invitations.cleanup`): a run holds a row lock on it, so two runs never overlap.

    A row lock instead of an advisory lock: advisory lock keys can be computed and taken by any
    role, the tenant role included; this table is granted to the console role alone.
    """

    name = models.CharField(max_length=64, primary_key=True)

    def __str__(self):
        return self.name
