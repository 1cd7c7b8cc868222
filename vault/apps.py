"""App configuration: registers the vault's system checks (the master key ring)."""

from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "vault"
    verbose_name = "Vault"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from vault import checks  # noqa: F401, PLC0415 - registers the system checks
