"""The tenant API's own tables: each key's rate-limit window and the usage counters."""

from __future__ import annotations

from django.db import models

from clients.models import ApiKey, Client


class RateWindow(models.Model):
    """How many requests a key made in the current one-minute window: one row per key.

    Only the authentication function (`api_authenticate`, SECURITY DEFINER, run by the owner)
    reads and writes it; no runtime role has any privilege on it. Keyed by the key alone, so it
    holds no client data and is not a tenant table.
    """

    api_key = models.OneToOneField(ApiKey, on_delete=models.CASCADE, primary_key=True, related_name="+")
    window_start = models.DateTimeField()
    used = models.PositiveIntegerField()

    def __str__(self):
        return f"{self.api_key_id} {self.window_start:%H:%M} {self.used}"


class Usage(models.Model):
    """Requests per client, application, key, endpoint, status class and day: a counter per combination.

    The application and key are plain ids, not foreign keys: metering is one upsert per request,
    and keys and applications are never deleted.
    """

    tenant_key = "client_id"

    class StatusClass(models.TextChoices):
        SUCCESS = "2xx", "2xx"
        CLIENT_ERROR = "4xx", "4xx"
        SERVER_ERROR = "5xx", "5xx"

    id = models.BigAutoField(primary_key=True)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    api_key_id = models.UUIDField()
    application_id = models.UUIDField(null=True, blank=True)
    endpoint = models.CharField(max_length=64)
    status_class = models.CharField(max_length=3, choices=StatusClass.choices)
    count = models.BigIntegerField(default=0)
    # How many of `count` were refused with 429 (over the key's rate limit): still 4xx, told apart
    # for the metrics endpoint and its alerts (docs/monitoring.md).
    rate_limited = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        verbose_name_plural = "usage"
        constraints = [
            # The upsert's conflict target; leads with the client (DESIGN §4). NULLS NOT DISTINCT:
            # a key without an application counts in one row, not one per request.
            models.UniqueConstraint(
                fields=["client", "day", "api_key_id", "endpoint", "status_class", "application_id"],
                name="api_usage_counter",
                nulls_distinct=False,
            ),
            models.CheckConstraint(condition=models.Q(status_class__in=["2xx", "4xx", "5xx"]), name="api_usage_class"),
        ]
        indexes = [
            # Today's counters of every client, read by each scrape of /metrics.
            models.Index(fields=["day"], name="api_usage_day"),
        ]

    def __str__(self):
        return f"{self.day} {self.endpoint} {self.status_class}: {self.count}"
