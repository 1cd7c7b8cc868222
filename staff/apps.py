"""App configuration: every `migrate` converges the role groups to the matrix in staff/roles.py."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class StaffConfig(AppConfig):
    name = "staff"
    verbose_name = "Staff access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from staff import roles  # noqa: PLC0415 - models are ready only now

        post_migrate.connect(roles.on_post_migrate, dispatch_uid="staff.roles")
