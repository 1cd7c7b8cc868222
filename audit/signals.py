"""Staff sign-in events (login, logout, failed login) recorded in the audit trail."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.dispatch import receiver

from audit.services import record


@receiver(user_logged_in, dispatch_uid="audit.login")
def on_login(sender, request, user, **kwargs):
    with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
        record(actor=user, action="staff.login", target=user)


@receiver(user_logged_out, dispatch_uid="audit.logout")
def on_logout(sender, request, user, **kwargs):
    if user is not None:
        with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
            record(actor=user, action="staff.logout", target=user)


@receiver(user_login_failed, dispatch_uid="audit.login_failed")
def on_login_failed(sender, credentials, request=None, **kwargs):
    # The attempted name is kept only when it is a real account: people type passwords into it.
    username = credentials.get("username", "")
    user_model = get_user_model()
    known = bool(username) and user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).exists()
    with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
        record(
            actor=None,
            action="staff.login_failed",
            target_type="auth.user",
            target_label=username if known else "(unknown user)",
        )
