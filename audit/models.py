"""AuditEvent: one append-only row per change, hash-chained per client so tampering is detectable."""

from django.db import models
from django.db.models import F
from django.db.models.functions import Upper

# The event vocabulary, for the admin's action filter and for readers of the trail.
KNOWN_ACTIONS = [
    "client.created",
    "client.updated",
    "client.deactivated",
    "client.reactivated",
    "client.erased",
    "client.backed_up",
    "client.backup_failed",  # a backup whose writing failed after it was recorded (clients/backup.py)
    "client.restored",
    "application.created",
    "application.updated",
    "api_key.created",
    "api_key.rate_limit_changed",
    "api_key.revoked",
    "data_key.created",
    "data_key.destroyed",
    "vault.master_key_rotated",
    "vault.master_key_retired",
    "secret.created",
    "secret.updated",
    "secret.used",
    "secret.revealed",
    "secret.deactivated",
    "secret.deleted",
    "secret.rewrapped",
    "signing_key.rotated",
    "invitation.issued",
    "invitation.resent",
    "invitation.revoked",
    "invitation.redeemed",
    "invitation.expired",
    "invitation.purged",
    "invitation.cleanup",
    "invitation.batch_issued",
    "invitation.sent",
    "invitation.send_failed",
    "staff.login",
    "staff.logout",
    "staff.login_failed",
    "staff.user_created",
    "staff.password_reset",
    "staff.password_set",
    "audit.checkpointed",
    "staff.user_changed",
    "staff.user_deactivated",
    "staff.user_reactivated",
    "staff.groups_changed",
    "staff.permissions_changed",
    "staff.group_created",
    "staff.group_renamed",
    "staff.group_permissions_changed",
    "staff.client_access_granted",
    "staff.client_access_revoked",
    "staff.locked_out",
    "staff.unlocked",
    "staff.mfa_enrolment_started",
    "staff.mfa_enrolled",
    "staff.mfa_failed",
    "staff.mfa_reset",
    "staff.elevated",
    "staff.elevation_failed",
    "audit.exported",
    "audit.verified",
]

# The stored columns an event's hash covers, besides its position (see audit.services.hashed_fields).
HASHED_COLUMNS = (
    "occurred_at", "client_id", "client_code", "actor_type", "actor_id", "actor_label", "action", "target_type",
    "target_id", "target_label", "changes", "ip", "user_agent", "request_id", "chain",
)  # fmt: skip


class AuditEvent(models.Model):
    """Who did what to which object, when, from where. Never updated or deleted (a trigger refuses it)."""

    tenant_key = "client_id"

    class ActorType(models.TextChoices):
        USER = "user", "Staff user"
        SYSTEM = "system", "System / command line"
        API_KEY = "api_key", "API key"

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(db_default=models.functions.Now())
    # No foreign key: events outlive the clients they mention (erasure keeps the trail).
    client_id = models.UUIDField(null=True, blank=True)
    client_code = models.CharField(max_length=50, blank=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    # Tamper evidence: events form one hash chain per client (or one for platform-wide events),
    # so writers for different clients never wait on each other.
    chain = models.CharField(max_length=40)
    seq = models.BigIntegerField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    # HMAC-SHA256 of `hash` with the audit key `key_id` (FLOWS_AUDIT_KEYS, never in the database):
    # what database credentials alone cannot produce. Empty on legacy events written before keying.
    key_id = models.CharField(max_length=32, blank=True, default="")
    mac = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            # client_id leads every unique constraint on a tenant table (DESIGN §4, §15).
            models.UniqueConstraint(
                fields=["client_id", "chain", "seq"], name="auditevent_chain_seq_key", nulls_distinct=False
            )
        ]
        indexes = [
            models.Index(fields=["client_id", "-occurred_at", "-id"], name="auditevent_client_time"),
            models.Index(fields=["-occurred_at", "-id"], name="auditevent_time"),
            models.Index(fields=["action", "-occurred_at"], name="auditevent_action_time"),
            models.Index(fields=["actor_type", "actor_id", "-occurred_at"], name="auditevent_actor_time"),
            models.Index(fields=["target_type", "target_id"], name="auditevent_target"),
            # The changelist's exact searches.
            models.Index(fields=["target_id"], name="auditevent_target_id"),
            models.Index(fields=["request_id"], name="auditevent_request"),
            # Its substring searches: the matching labels come from SearchLabel (trigram), then the events of each
            # label newest first, by equality on the expression Django's icontains compiles to (UPPER(col)).
            models.Index(
                Upper("actor_label"), F("occurred_at").desc(), F("id").desc(), name="auditevent_actor_label_time"
            ),
            models.Index(
                Upper("target_label"), F("occurred_at").desc(), F("id").desc(), name="auditevent_target_label_time"
            ),
        ]
        permissions = [("export_auditevent", "Can export audit events")]

    def __str__(self):
        return f"{self.action} #{self.id}"


class ChainHead(models.Model):
    """The last event of one chain (a client's, or the platform's): appending locks this row.

    A row lock, not an advisory lock: only roles that can see the row under RLS can take it, so
    the tenant role can hold up its own client's writes at most, never another client's or the
    platform's (whose row has no client_id, so no tenant policy ever matches it). Also makes
    finding the head one index lookup however long the trail.
    """

    tenant_key = "client_id"

    client_id = models.UUIDField(null=True, blank=True)
    chain = models.CharField(max_length=40)
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["client_id", "chain"], name="audit_chainhead_chain_key", nulls_distinct=False
            )
        ]

    def __str__(self):
        return f"{self.chain} #{self.seq}"


class Checkpoint(models.Model):
    """A chain's head (seq, hash) at one moment, signed with the Ed25519 key only `audit_checkpoint` holds.

    Also written to a stream operators ship outside the database: the copy there is what catches a
    chain rewritten consistently by someone who could also rewrite this table.
    """

    tenant_key = "client_id"

    id = models.BigAutoField(primary_key=True)
    client_id = models.UUIDField(null=True, blank=True)
    chain = models.CharField(max_length=40)
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    key_id = models.CharField(max_length=32)
    signature = models.CharField(max_length=100)

    class Meta:
        indexes = [models.Index(fields=["client_id", "chain", "-seq"], name="audit_checkpoint_chain")]

    def __str__(self):
        return f"{self.chain} @ {self.seq}"


class SearchLabel(models.Model):
    """One distinct actor or target label of the trail, upper-cased: where the changelist's substring search looks.

    The trail repeats its labels (a staff user's name, a secret's name), so this table stays thousands of
    rows where the trail holds millions; a term is matched here by trigram, and the events by equality on
    `auditevent_actor_label_time` / `auditevent_target_label_time` (docs/audit.md, "Search"). Kept by the
    trigger `audit_event_feeds_search_labels` (audit/migrations/0008) as the owner, whoever inserts the event;
    the console role may only read it, the tenant role holds nothing on it. No client_id: a label may belong
    to several clients, and the table is only ever used to find events, which are then scoped as always.
    A label may stand twice (two writers that added it at the same moment); readers take it once.
    """

    class Field(models.TextChoices):
        ACTOR = "actor", "actor label"
        TARGET = "target", "target label"

    id = models.BigAutoField(primary_key=True)
    field = models.CharField(max_length=6, choices=Field.choices)
    label = models.TextField()

    class Meta:
        # Not unique: a unique index would make a writer wait for any other transaction that inserted the same new
        # label, whichever client it writes for (and two writers taking two new labels in opposite orders deadlock).
        # Two writers racing on one new label may both add it; readers take each label once (audit 0009).
        indexes = [models.Index(fields=["field", "label"], name="audit_searchlabel_lookup")]

    def __str__(self):
        return f"{self.field}: {self.label}"
