"""App configuration for the audit trail."""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self):
        from audit import checks, signals  # noqa: F401, PLC0415 - system checks; staff login/logout receivers
