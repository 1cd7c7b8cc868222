"""App configuration of the tenant API (django-ninja, mounted at /api/v1/)."""

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Tenant API"
    default_auto_field = "django.db.models.BigAutoField"
