"""The suite fails on what it promises to fail on: a server error, a JavaScript error, a CSP violation.

Each test provokes one on purpose and expects the step's checks to refuse it; none reaches the journeys.
"""

from __future__ import annotations

import pytest


def _refused(console, *fragments: str) -> None:
    with pytest.raises(AssertionError) as refusal:
        console.check("provoked")
    missing = [fragment for fragment in fragments if fragment not in str(refusal.value)]
    assert not missing, f"the check did not name {missing}: {refusal.value}"
    console.driver.get("about:blank")  # the end-of-journey check would see the provoked page again


def test_a_server_error_fails_the_step(console, settings):
    settings.ROOT_URLCONF = "tests_browser.urls"
    console.open("/harness/fail/")
    _refused(console, "server: ERROR: Internal Server Error: /harness/fail/", "a deliberate failure",
             "error page: 'Something went wrong on our side'", "status of 500")  # fmt: skip


def test_a_missing_page_fails_the_step(console):
    console.open("/admin/login/")
    console.check("the sign-in page is clean")
    console.open("/no-such-page/")
    _refused(console, "server: WARNING: Not Found: /no-such-page/", "error page: 'There is no such page'")


def test_a_javascript_error_fails_the_step(console):
    console.open("/admin/login/")
    console.driver.execute_script("setTimeout(() => { throw new Error('provoked in the page'); }, 0);")
    console.wait(lambda d: d.execute_script("return new Promise(r => setTimeout(() => r(true), 0))"))
    _refused(console, "console:", "provoked in the page")


def test_a_content_security_policy_violation_fails_the_step(console):
    console.open("/admin/login/")
    # What an inline <script> in a template would do: the console's policy refuses it, and Chromium says so.
    console.driver.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.ran = true'; document.body.append(s);"
    )
    assert console.driver.execute_script("return window.ran === undefined")
    _refused(console, "console:", "Content Security Policy")
