"""The elevated session: sensitive operations need the password (and second factor) confirmed a few minutes ago.

Reveal a secret, rotate keys, erase a client, export the audit trail and grant access: a stolen
session cookie alone is not enough for them (Sentry's staff mode works the same way).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

SESSION_KEY = "staff_elevated_until"
NOTICE = (
    "This operation needs a recent re-authentication: confirm your password (and second factor); "
    "it stays valid for {minutes} minutes."
)


def elevate(request) -> datetime:
    until = timezone.now() + timedelta(minutes=settings.FLOWS_STAFF_ELEVATION_MINUTES)
    request.session[SESSION_KEY] = until.isoformat()
    return until


def elevated_until(request) -> datetime | None:
    """When the elevation ends, or None when the session is not elevated (never, or no longer)."""
    value = request.session.get(SESSION_KEY)
    until = datetime.fromisoformat(value) if value else None
    return until if until and until > timezone.now() else None


def notice() -> str:
    return NOTICE.format(minutes=settings.FLOWS_STAFF_ELEVATION_MINUTES)


def require_elevation(request, next_url: str | None = None):
    """None when elevated; else the redirect to the re-authentication page, which comes back to `next_url`."""
    if elevated_until(request):
        return None
    messages.info(request, notice())
    query = urlencode({"next": next_url or request.get_full_path()})
    return redirect(f"{reverse('staff_elevate')}?{query}")
