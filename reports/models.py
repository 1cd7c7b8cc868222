"""The invitation summary the dashboard reads: kept by the database, in the writing transaction.

Statement-level triggers on `invitations_invitation` (reports/migrations/0001) maintain both tables
from the rows each INSERT, UPDATE or DELETE changed, whoever writes (the console's services, the
tenant role redeeming through the API, the cleanup's set-based expire and purge, a COPY, a restore).
Nothing in Python writes them; no role but the owner (through the SECURITY DEFINER trigger
function) may. See docs/console.md, "The invitation summary".
"""

from django.db import models

from clients.models import Client, Tier


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
    # The client's tier, kept by the clients' trigger (reports/migrations/0002): within a tier the share
    # of the limit orders as the seats do, so "nearest the limit" is a top-10 per tier on the index below.
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, null=True, related_name="+", db_index=False)

    class Meta:
        verbose_name_plural = "client seats"
        indexes = [
            models.Index(
                fields=["tier", "-seats", "client"], condition=models.Q(seats__gt=0), name="clientseats_tier_seats"
            ),
        ]

    def __str__(self):
        return f"{self.seats} seat(s)"


# --- Platform-wide summaries (no client's data: counts over every client) ---------------------------
#
# Read by the dashboard of a platform-wide staff member only (a scoped one reads the per-client rows
# above, filtered to their grants). Kept by the same triggers, in the writing transaction; the console
# role may only read them, the tenant role holds nothing on them.

PLATFORM_SHARDS = 16  # rows per day in PlatformDaily: see its docstring


class PlatformDaily(models.Model):
    """Per UTC day: the sums of `InvitationDaily` over every client, split into `PLATFORM_SHARDS` rows
    by the client's id (its last byte, modulo the shard count) so that writes of different clients on
    the same day seldom wait on one row. The weekly chart sums at most 84 x 16 rows, whatever the
    number of clients. Like `InvitationDaily`, a DELETE (purge) leaves it alone."""

    day = models.DateField()
    shard = models.SmallIntegerField()
    issued = models.BigIntegerField(default=0)
    redeemed = models.BigIntegerField(default=0)
    revoked = models.BigIntegerField(default=0)
    expired = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "platform daily"
        constraints = [models.UniqueConstraint(fields=["day", "shard"], name="platformdaily_day_shard")]

    def __str__(self):
        return f"{self.day}/{self.shard}: {self.issued} issued"


class ClientTally(models.Model):
    """Per tier and client status: how many clients there are, kept by triggers on the clients."""

    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+", db_index=False)
    status = models.CharField(max_length=12)
    clients = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "client tallies"
        constraints = [models.UniqueConstraint(fields=["tier", "status"], name="clienttally_tier_status")]

    def __str__(self):
        return f"{self.tier_id}/{self.status}: {self.clients}"
