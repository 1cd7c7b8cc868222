"""The vault's tables: per-client data keys, secrets and their access log (under RLS); signing keys (global)."""

import uuid

from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models

from clients.models import Client

SLUG = RegexValidator(r"^[a-z0-9][a-z0-9_.-]{0,99}$", "Use lowercase letters, digits, '.', '_' and '-'.")


class DataKey(models.Model):
    """A client's 256-bit data key, stored only wrapped (AES-256-GCM) by a master key.

    One version per client is `active` and encrypts new values; `previous` versions still
    decrypt until `rewrap` has moved everything forward. Erasure destroys every version: the
    wrapped key is removed and nothing of the client's encrypted data can be read again.
    """

    tenant_key = "client_id"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active (encrypts new values)"
        PREVIOUS = "previous", "Previous (decrypts only)"
        DESTROYED = "destroyed", "Destroyed (client erased)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="data_keys")
    version = models.PositiveIntegerField()
    wrapped_key = models.BinaryField(null=True, editable=False)
    master_key_id = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["client__code", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["client", "version"], name="datakey_unique_version_per_client"),
            models.UniqueConstraint(
                fields=["client"], condition=models.Q(status="active"), name="datakey_one_active_per_client"
            ),
            models.CheckConstraint(
                condition=models.Q(status="destroyed", wrapped_key__isnull=True)
                | (~models.Q(status="destroyed") & models.Q(wrapped_key__isnull=False)),
                name="datakey_destroyed_has_no_key",
            ),
        ]
        indexes = [models.Index(fields=["master_key_id"], name="datakey_master_key")]
        permissions = [("rotate_keys", "Can rotate keys, rewrap and erase clients")]

    def __str__(self):
        return f"{self.client_id} v{self.version} ({self.status})"


class Secret(models.Model):
    """A value staff keep for a client (an integration's API key, a webhook secret, …), encrypted under its data key."""

    tenant_key = "client_id"

    class Type(models.TextChoices):
        API_KEY = "api_key", "API key"
        WEBHOOK_SECRET = "webhook_secret", "Webhook secret"
        OAUTH_TOKEN = "oauth_token", "OAuth token"
        PASSWORD = "password", "Password"
        CONNECTION_STRING = "connection_string", "Connection string"
        CERTIFICATE = "certificate", "Certificate or private key"
        OTHER = "other", "Other"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="secrets")
    name = models.CharField(
        max_length=100, validators=[SLUG], help_text="Unique within the client, e.g. slack-api_key."
    )
    provider = models.CharField(max_length=50, validators=[SLUG], help_text="e.g. slack, stripe, workday.")
    secret_type = models.CharField(max_length=20, choices=Type.choices)
    ciphertext = models.BinaryField(editable=False)
    data_key_version = models.PositiveIntegerField(editable=False)
    description = models.CharField(max_length=500, blank=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    usage_count = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["client__code", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "provider", "secret_type"], name="secret_unique_provider_type_per_client"
            ),
            models.UniqueConstraint(fields=["client", "name"], name="secret_unique_name_per_client"),
        ]
        indexes = [
            models.Index(fields=["client", "data_key_version"], name="secret_client_key_version"),
            # The dashboard's secrets expiring soon, across clients (reports/dashboard.py).
            models.Index(fields=["expires_at"], condition=models.Q(is_active=True), name="secret_active_expiry"),
        ]
        permissions = [("reveal_secret", "Can reveal a secret's value")]

    def __str__(self):
        return self.name


class SecretAccess(models.Model):
    """One access to a secret: created, updated, used, revealed, deactivated, deleted. Append-only (a trigger)."""

    tenant_key = "client_id"

    class Type(models.TextChoices):
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        USE = "use", "Use"
        REVEAL = "reveal", "Reveal"
        DEACTIVATE = "deactivate", "Deactivate"
        DELETE = "delete", "Delete"

    id = models.BigAutoField(primary_key=True)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="+")
    # No foreign key: the log outlives a deleted secret.
    secret_id = models.UUIDField()
    secret_name = models.CharField(max_length=100)
    access_type = models.CharField(max_length=10, choices=Type.choices)
    actor_type = models.CharField(max_length=10)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    occurred_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "secret access"
        verbose_name_plural = "secret accesses"
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["client", "secret_id", "-occurred_at"], name="secretaccess_secret_time"),
            models.Index(fields=["client", "-occurred_at"], name="secretaccess_client_time"),
        ]

    def __str__(self):
        return f"{self.access_type} {self.secret_name}"


class SigningKey(models.Model):
    """An Ed25519 key pair that signs invitation tokens; the private half is stored wrapped by a master key.

    `active` signs; `retiring` no longer signs but stays published in the JWKS until
    `publish_until`, when every token it signed has expired; then `retired`.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active (signs)"
        RETIRING = "retiring", "Retiring (published, does not sign)"
        RETIRED = "retired", "Retired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kid = models.CharField(max_length=64, unique=True, help_text="RFC 7638 thumbprint of the public key.")
    algorithm = models.CharField(max_length=10, default="EdDSA")
    public_key = models.BinaryField()
    wrapped_private_key = models.BinaryField(editable=False)
    master_key_id = models.CharField(max_length=32)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    retiring_since = models.DateTimeField(null=True, blank=True)
    publish_until = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="active"), name="signingkey_one_active"
            )
        ]

    def __str__(self):
        return f"{self.kid} ({self.status})"
