"""App configuration: every `migrate` converges the role groups to staff/roles.py; lockouts are audited."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class StaffConfig(AppConfig):
    name = "staff"
    verbose_name = "Staff access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from staff import roles, signals  # noqa: F401, PLC0415 - models are ready only now; registers receivers

        post_migrate.connect(roles.on_post_migrate, dispatch_uid="staff.roles")
