"""Staff members for the journeys, and the authenticator app they carry (a TOTP computed here, as a phone would)."""

from __future__ import annotations

import secrets
import time
from binascii import unhexlify
from dataclasses import dataclass

from django.contrib.auth.models import User
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from staff import services
from tests_browser.console import Console

STEP, DIGITS = 30, 6


def code_from_key(hex_key: str) -> str:
    """What an authenticator app shows now for the key the enrolment page displayed (hexadecimal)."""
    totp = TOTP(unhexlify(hex_key), step=STEP, digits=DIGITS)
    totp.time = time.time()
    return f"{totp.token():0{DIGITS}d}"


def next_code(user: User) -> str:
    """A code the user's confirmed device accepts now.

    django-otp accepts each time step once, within one step either side: after a code of the current
    step was used (the sign-in), the next one the app would show (the following step) is accepted —
    what a person waiting for the next code would type, without the wait.
    """
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    now = totp.t()
    wanted = max(now, device.last_t + 1)
    assert wanted - now <= device.tolerance, "more codes used than the tolerance allows within one step"
    totp.drift = device.drift + (wanted - now)
    return f"{totp.token():0{device.digits}d}"


@dataclass
class Staff:
    user: User
    password: str

    @property
    def username(self) -> str:
        return self.user.username


def staff_member(username: str, role: str, *, enrolled: bool = True) -> Staff:
    """A staff member with a password and (unless `enrolled` is False) a confirmed authenticator."""
    user = services.create_staff_user(actor=None, username=username, email=f"{username}@thepia.net", role=role)
    password = secrets.token_urlsafe(18)
    services.set_password(actor=None, user=user, password=password)
    if enrolled:
        device = services.start_totp_enrolment(actor=None, user=user)
        assert services.confirm_totp_enrolment(actor=None, user=user, token=code_from_key(device.key)) is not None
    return Staff(User.objects.get(pk=user.pk), password)


def sign_in(console: Console, staff: Staff) -> None:
    """The sign-in an enrolled staff member goes through: the console, the password, the code."""
    with console.step("sign in"):
        console.open("/admin/")
        console.expect_path("/admin/login/")
        console.fill("username", staff.username)
        console.fill("password", staff.password)
        console.click_button("Log in")
        console.expect_path("/admin/mfa/verify/")
        console.fill("token", next_code(staff.user))
        console.click_button("Verify")
        console.expect_path("/admin/")
        console.expect_text("Staff console")


def confirm_it_is_you(console: Console, staff: Staff) -> None:
    """The re-authentication page of sensitive operations (password and a fresh code)."""
    console.expect_path("/admin/elevate/")
    console.expect_text("needs a recent re-authentication")
    console.fill("password", staff.password)
    console.fill("token", next_code(staff.user))
    console.click_button("Confirm")


def wait_out_the_throttle(console: Console, user: User) -> None:
    """After a wrong code django-otp refuses every code for a moment (1 s, doubling with each failure),
    as a person retyping would not notice: wait, explicitly, until the device accepts codes again."""

    def accepting(_driver) -> bool:
        return all(device.verify_is_allowed()[0] for device in TOTPDevice.objects.filter(user=user))

    console.wait(accepting, message="the second factor's throttle to lapse")
