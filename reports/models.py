"""The invitation summary the dashboard reads: kept by the database, in the writing transaction.

Statement-level triggers on `invitations_invitation` (reports/migrations/0001) maintain both tables
from the rows each INSERT, UPDATE or DELETE changed, whoever writes (the console's services, the
tenant role redeeming through the API, the cleanup's set-based expire and purge, a COPY, a restore).
Nothing in Python writes them; no role but the owner (through the SECURITY DEFINER trigger
function) may. See docs/console.md, "The invitation summary".
"""

from django.db import models

from clients.models import Client


class InvitationDaily(models.Model):
    """Per client and UTC day: invitations issued (by `created_at`) and finished as redeemed, revoked or
    expired (by `finished_at`, with their current status), exactly as the live rows count them.

    History: a purge (cleanup past retention) or any other DELETE leaves these counts alone, so the
    weekly chart keeps invitations the cleanup has since deleted. A status change moves a count
    (an expired invitation revived by a resend leaves its `expired` day), as the live rows would.
    """

    tenant_key = "client_id"

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="+", db_index=False)
    day = models.DateField()
    issued = models.IntegerField(default=0)
    redeemed = models.IntegerField(default=0)
    revoked = models.IntegerField(default=0)
    expired = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "day"], name="invitationdaily_client_day")]
        indexes = [
            # The platform-wide weekly chart: a range of days, read from the index alone.
            models.Index(
                fields=["day"], include=["issued", "redeemed", "revoked", "expired"], name="invitationdaily_day"
            ),
        ]

    def __str__(self):
        return f"{self.day}: {self.issued} issued"


class ClientSeats(models.Model):
    """Per client: the seats its invitations hold, as `invitations.selectors.seats_used` counts them
    (a pending invitation all its uses, any other the uses made). A DELETE (a purge) gives seats back,
    as it does for the live count."""

    tenant_key = "client_id"

    client = models.OneToOneField(Client, on_delete=models.PROTECT, primary_key=True, related_name="+")
    seats = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "client seats"

    def __str__(self):
        return f"{self.seats} seat(s)"
