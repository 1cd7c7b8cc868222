"""Sign-in pages of the console: second factor enrolment (QR code, recovery codes) and check, and re-authentication."""

from __future__ import annotations

from io import BytesIO

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import authenticate
from django.contrib.auth.views import PasswordResetConfirmView
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django_otp import login as otp_login
from django_otp import match_token, user_has_device

from audit.services import record
from staff import elevation, services


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure())
    return target if safe and target.startswith("/") else reverse("admin:index")


def _page(request, template: str, title: str, **context):
    context = {**admin.site.each_context(request), "title": title, "next": _next(request), **context}
    return TemplateResponse(request, f"admin/staff/{template}", context)


def qr_code_svg(data: str) -> str:
    """The enrolment QR code as inline SVG, drawn here: the key never leaves the server for a QR service."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=20)
    buffer = BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode().split("?>", 1)[-1]  # without the XML declaration: it is inlined in HTML


def _match_token(user, token: str):
    """django-otp's check of a code against the user's devices, in a transaction of the console database.

    It locks the devices (SELECT … FOR UPDATE, so one code cannot be used twice at once), which Django
    refuses outside a transaction: a server in autocommit answered every code with a 500.
    """
    with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
        return match_token(user, token)


def mfa_enrol(request):
    """Scan the QR code, type a code from the app; then the recovery codes are shown once."""
    if user_has_device(request.user) and not request.user.is_verified():
        return redirect("staff_mfa_verify")  # replacing a device needs the current one first
    if request.method == "POST":
        confirmed = services.confirm_totp_enrolment(
            actor=request.user, user=request.user, token=request.POST.get("token")
        )
        if confirmed is not None:
            device, codes = confirmed
            otp_login(request, device)
            return _page(request, "recovery_codes.html", "Recovery codes", codes=codes)
        messages.error(request, "That code is not right: type the 6 digits your app shows now.")
    device = services.start_totp_enrolment(actor=request.user, user=request.user)
    return _page(
        request,
        "mfa_enrol.html",
        "Set up two-factor sign-in",
        qr_code=mark_safe(qr_code_svg(device.config_url)),  # noqa: S308 - SVG made here from our own data
        key=device.key,
    )


def mfa_verify(request):
    if not user_has_device(request.user):
        return redirect("staff_mfa_enrol")
    if request.method == "POST":
        device = _match_token(request.user, (request.POST.get("token") or "").strip())
        if device is not None:
            otp_login(request, device)
            return redirect(_next(request))
        services.record_sign_in_step(actor=request.user, user=request.user, action="staff.mfa_failed")
        messages.error(request, "That code is not right.")
    return _page(request, "mfa_verify.html", "Second factor")


def elevate(request):
    """Confirm the password (and a code when the user has a second factor) to open sensitive operations for a while."""
    if request.method == "POST":
        password_ok = (
            authenticate(request, username=request.user.get_username(), password=request.POST.get("password", ""))
            == request.user
        )
        code_ok = not user_has_device(request.user) or _match_token(request.user, request.POST.get("token", "").strip())
        if password_ok and code_ok:
            elevation.elevate(request)
            services.record_sign_in_step(actor=request.user, user=request.user, action="staff.elevated")
            return redirect(_next(request))
        services.record_sign_in_step(actor=request.user, user=request.user, action="staff.elevation_failed")
        messages.error(request, "Password or code not right.")
    return _page(
        request,
        "elevate.html",
        "Confirm it is you",
        notice=elevation.notice(),
        needs_code=user_has_device(request.user),
        minutes=settings.FLOWS_STAFF_ELEVATION_MINUTES,
    )


class PasswordSetView(PasswordResetConfirmView):
    """The one-time link `create_staff_user` prints: the new staff user sets their own password, audited
    in the same transaction (the user is the actor: nobody else knew the link's token)."""

    success_url = reverse_lazy("admin:index")

    def form_valid(self, form):
        with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
            response = super().form_valid(form)
            record(actor=form.user, action="staff.password_set", target=form.user)
        return response
