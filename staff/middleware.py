"""Outside DEBUG, a signed-in staff user reaches the console only after their second factor."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django_otp import user_has_device

# What a session may reach before its second factor: signing in and out, and the second factor's own pages.
OPEN_PAGES = ("admin:login", "admin:logout", "staff_mfa_verify", "staff_mfa_enrol")


class SecondFactorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.FLOWS_STAFF_REQUIRE_MFA and not settings.FLOWS_TENANT_ONLY and self._needs_second_factor(request):
            target = "staff_mfa_verify" if user_has_device(request.user) else "staff_mfa_enrol"
            return redirect(f"{reverse(target)}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)

    @staticmethod
    def _needs_second_factor(request) -> bool:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or user.is_verified():
            return False
        return request.path.startswith(reverse("admin:index")) and request.path not in {
            reverse(name) for name in OPEN_PAGES
        }
