"""Invitation: metadata and a hash of the token only. The invitee's personal data lives in the token, encrypted."""

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models

from clients.constraints import TenantForeignKey
from clients.models import Application, Client


class Invitation(models.Model):
    """One invitation to a client's application; `id` is the token's `sub`.

    Never holds a name or an e-mail address, not even encrypted: `email_hash` is a keyed hash
    (HMAC under a key derived from the client's data key), so erasing the client unlinks it.
    """

    tenant_key = "client_id"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="invitations")
    # Composite foreign key (client_id, application_id): see TenantForeignKey below.
    application = models.ForeignKey(
        Application,
        on_delete=models.DO_NOTHING,
        related_name="invitations",
        db_constraint=False,
        db_index=False,  # covered by invitation_client_application
    )
    code = models.CharField(max_length=12, unique=True, editable=False, help_text="For support, e.g. INV-7K2M9Q.")
    token_hash = models.CharField(max_length=64, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    max_uses = models.PositiveIntegerField(default=1)
    used_count = models.PositiveIntegerField(default=0)
    permissions = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    restrictions = models.JSONField(default=dict, blank=True)
    expires_at = models.DateTimeField()
    email_hash = models.CharField(max_length=64, blank=True, editable=False)
    kid = models.CharField(max_length=64, editable=False, help_text="The signing key of the current token.")
    created_by = models.CharField(max_length=200, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=200, blank=True)
    revoke_reason = models.CharField(max_length=500, blank=True)
    resend_count = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When it stopped being pending.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["client", "token_hash"], name="invitation_unique_token_per_client"),
            TenantForeignKey(field="application", name="invitation_application_same_client"),
            models.UniqueConstraint(
                fields=["client", "application", "email_hash"],
                condition=models.Q(status="pending") & ~models.Q(email_hash=""),
                name="invitation_one_pending_per_email",
            ),
            models.CheckConstraint(condition=models.Q(used_count__lte=models.F("max_uses")), name="invitation_uses"),
            models.CheckConstraint(
                condition=models.Q(max_uses__gte=1, max_uses__lte=1000), name="invitation_max_uses_range"
            ),
        ]
        indexes = [
            models.Index(fields=["client", "application"], name="invitation_client_application"),
            models.Index(fields=["client", "status", "expires_at"], name="invitation_client_status"),
            models.Index(fields=["client", "-created_at"], name="invitation_client_created"),
            # The seat count (issue_checks) reads this index only: issuing at 10,000 invitations stays cheap.
            models.Index(
                fields=["client", "status"], include=["max_uses", "used_count"], name="invitation_client_seats"
            ),
            # Cleanup across clients: overdue pending ones, and finished ones past retention.
            models.Index(fields=["expires_at"], condition=models.Q(status="pending"), name="invitation_pending_expiry"),
            # `status` included: the dashboard's weekly redeemed/expired/revoked counts read the index alone.
            models.Index(
                fields=["finished_at"],
                include=["status"],
                condition=~models.Q(status="pending"),
                name="invitation_finished_at",
            ),
            # The dashboard's invitations issued per week across clients (reports/dashboard.py).
            models.Index(fields=["created_at"], name="invitation_created_at"),
        ]
        permissions = [
            ("issue_invitation", "Can issue invitations"),
            ("resend_invitation", "Can resend an invitation with a new token"),
            ("revoke_invitation", "Can revoke invitations"),
        ]

    def __str__(self):
        return self.code

    @property
    def uses_left(self) -> int:
        return self.max_uses - self.used_count
