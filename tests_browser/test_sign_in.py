"""A new staff member's first day: set the password from the one-time link, sign in, enrol the second factor."""

from __future__ import annotations

import re

from django.contrib.auth.models import User

from staff import services
from staff.management.commands.create_staff_user import password_set_link
from tests_browser.staff import code_from_key, next_code, wait_out_the_throttle


def test_first_sign_in(console):
    user = services.create_staff_user(actor=None, username="pat", email="pat@thepia.net", role="Platform admin")
    password = "correct horse battery staple 7"

    with console.step("the console asks to sign in"):
        console.open("/admin/")
        console.expect_path("/admin/login/")
        console.expect_text("Username", "Password")

    with console.step("set the password from the one-time link"):
        console.open(password_set_link(user))
        console.fill("new_password1", password)
        console.fill("new_password2", password)
        console.click_button("Change my password")
        console.expect_path("/admin/login/")

    with console.step("a wrong password is refused"):
        console.fill("username", "pat")
        console.fill("password", "not the password")
        console.click_button("Log in")
        console.expect_path("/admin/login/")
        console.expect_text("Please enter the correct username and password")

    with console.step("the right password leads to enrolling a second factor"):
        console.fill("username", "pat")
        console.fill("password", password)
        console.click_button("Log in")
        console.expect_path("/admin/mfa/enrol/")
        console.expect_text("Set up two-factor sign-in", "Scan this code")
        key = console.driver.find_element("css selector", "#content code").text
        assert re.fullmatch(r"[0-9a-f]{40}", key), key

    with console.step("a wrong code is refused"):
        console.fill("token", "000000" if code_from_key(key) != "000000" else "111111")
        console.click_button("Confirm")
        console.expect_path("/admin/mfa/enrol/")
        console.expect_text("That code is not right")

    with console.step("the app's code confirms it and the recovery codes are shown once"):
        wait_out_the_throttle(console, user)
        console.fill("token", code_from_key(key))
        console.click_button("Confirm")
        console.expect_text("Two-factor sign-in is set up", "recovery codes")
        codes = console.driver.find_elements("css selector", "#content li code")
        assert len(codes) == services.RECOVERY_CODES

    with console.step("continue to the console"):
        console.click_link("Continue to the console")
        console.expect_path("/admin/")
        console.expect_text("Staff console", "Clients", "Invitations", "Audit")

    with console.step("sign out"):
        console.click_button("Log out")
        console.expect_text("Logged out")

    with console.step("sign in again: password, then a code"):
        console.open("/admin/")
        console.fill("username", "pat")
        console.fill("password", password)
        console.click_button("Log in")
        console.expect_path("/admin/mfa/verify/")
        console.fill("token", next_code(User.objects.get(username="pat")))
        console.click_button("Verify")
        console.expect_path("/admin/")
        console.expect_text("Staff console")
