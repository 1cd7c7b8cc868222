"""App configuration for invitations."""

from django.apps import AppConfig


class InvitationsConfig(AppConfig):
    name = "invitations"
    verbose_name = "Invitations"
    default_auto_field = "django.db.models.BigAutoField"
