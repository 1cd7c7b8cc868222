"""App configuration: wires the role/grant/policy set-up to `migrate` and registers the checks."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ClientsConfig(AppConfig):
    name = "clients"
    verbose_name = "Clients"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from clients import checks, dbroles  # noqa: F401, PLC0415 - registers the system checks

        post_migrate.connect(dbroles.on_post_migrate, dispatch_uid="clients.dbroles")
