"""A sign-in lockout (django-axes) goes into the audit trail as `staff.locked_out`."""

from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.dispatch import receiver

from staff import services


@receiver(user_locked_out, dispatch_uid="staff.locked_out")
def on_locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    # Like staff.login_failed: the attempted name only when it is a real account (people type passwords into it).
    user = get_user_model().objects.filter(username=username or "").first()
    services.record_sign_in_step(actor=None, user=user, action="staff.locked_out", label="(unknown user)")
