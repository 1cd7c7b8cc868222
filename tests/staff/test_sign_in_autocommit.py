"""Second-factor checks as a real server runs them: in autocommit, not inside a test's wrapping transaction.

django-otp locks the user's devices while it checks a code (SELECT … FOR UPDATE), which Django refuses
outside a transaction. Inside a test transaction that passes unnoticed; a live server answered every code
with a 500 (found by the browser journeys, tests_browser/). These tests commit for real.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client as Browser
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from staff import services

PASSWORD = "Corr3ct-horse-battery"


def _code(device: TOTPDevice, ahead: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift + ahead)
    return f"{totp.token():06d}"


@pytest.fixture
def enrolled(committed, settings):
    settings.FLOWS_STAFF_REQUIRE_MFA = True
    user = services.create_staff_user(actor=None, username="officer", email="o@thepia.net", role="Security officer")
    services.set_password(actor=None, user=user, password=PASSWORD)
    device = services.start_totp_enrolment(actor=None, user=user)
    assert services.confirm_totp_enrolment(actor=None, user=user, token=_code(device))
    return User.objects.get(pk=user.pk)


def test_a_code_signs_in_and_re_authenticates_outside_a_transaction(enrolled):
    browser = Browser()
    response = browser.post(reverse("admin:login"), {"username": "officer", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302
    response = browser.get(reverse("admin:index"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("staff_mfa_verify"))

    device = TOTPDevice.objects.get(user=enrolled, confirmed=True)
    response = browser.post(reverse("staff_mfa_verify"), {"token": _code(device, ahead=1), "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert browser.get(reverse("admin:index")).status_code == 200

    device.refresh_from_db()
    response = browser.post(
        reverse("staff_elevate"), {"password": PASSWORD, "token": _code(device, ahead=1), "next": "/admin/"}
    )
    assert response.status_code == 302 and response["Location"] == "/admin/"
