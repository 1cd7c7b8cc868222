"""A client from its creation to its erasure, worked from its page (the hub): domain, applications, status, erase."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from clients.models import Application, Client
from tests_browser.staff import confirm_it_is_you, sign_in
from vault import services as vault_services
from vault.models import DataKey

GOOD_CONFIGURATION = """{
  "locale": "en-GB",
  "timezone": "Europe/London",
  "branding": {"display_name": "Acme Onboarding", "primary_color": "#0a7cff"},
  "notifications": {"email": true, "reminder_days": [1, 3, 7]}
}"""


def assert_cancel_beside_submit(console) -> None:
    """A confirmation's Cancel link is a button of the same height, on the same line as the submit button (it once
    sat higher and smaller, its text at the top)."""
    submit = console.driver.find_element(By.CSS_SELECTOR, "form .submit-row input[type=submit]")
    cancel = console.driver.find_element(By.CSS_SELECTOR, "form .submit-row a.cancel-link")
    assert abs(submit.rect["y"] - cancel.rect["y"]) <= 1, (submit.rect, cancel.rect)
    assert abs(submit.rect["height"] - cancel.rect["height"]) <= 1, (submit.rect, cancel.rect)
    assert cancel.rect["x"] > submit.rect["x"] + submit.rect["width"]


# Two mistakes a person makes: a locale written out, a property that does not exist.
BAD_CONFIGURATION = '{"locale": "English", "colour": "#0a7cff"}'


def banner(console) -> str:
    """The status banner's words as written (textContent: the stylesheet upper-cases the status)."""
    return " ".join(
        console.driver.find_element(By.CSS_SELECTOR, ".console-banner").get_attribute("textContent").split()
    )


def hub_operations(console) -> list[str]:
    """The operations the client's page offers: its object tools and its buttons."""
    links = console.driver.find_elements(By.CSS_SELECTOR, ".object-tools a, .console-actions a")
    return [" ".join(link.get_attribute("textContent").split()) for link in links if link.is_displayed()]


def test_client(console, platform_admin):
    sign_in(console, platform_admin)

    with console.step("the clients list"):
        console.open_model("clients.client")
        console.expect_path("/admin/clients/client/")

    with console.step("a new client with a bad domain is refused, what was typed is kept"):
        console.click_link("Add client")
        console.fill("code", "acme")
        console.fill("legal_name", "Acme Corporation")
        console.fill("domain", "acme corp!")
        console.choose("region", "European Union")
        console.choose("tier", "Pro")
        console.save()
        console.expect_path("/admin/clients/client/add/")
        console.expect_field_error("domain", "domain")
        assert console.value("code") == "acme" and console.value("legal_name") == "Acme Corporation"
        assert not Client.objects.filter(code="acme").exists()

    with console.step("with a good domain it is created"):
        console.fill("domain", "acme-corp.thepia.net")
        console.save()
        console.expect_message("was added successfully")
        assert Client.objects.get(code="acme").domain == "acme-corp.thepia.net"

    with console.step("its page is the hub: status, usage and the operations"):
        console.open_client("acme")
        assert banner(console).startswith("Active"), banner(console)
        console.expect_text("Usage against tier Pro", "Recent invitations", "Latest audit events")
        offered = hub_operations(console)
        for operation in ("Issue invitation", "Add application", "Add secret", "Create API key",
                          "Deactivate…", "Rotate data key…", "Erase…"):  # fmt: skip
            assert operation in offered, offered
        assert "Reactivate…" not in offered
        assert console.value("domain") == "acme-corp.thepia.net"

    with console.step("deactivate from the page: the confirmation asks a reason"):
        console.click_link("Deactivate…", within=".console-actions")
        console.expect_text("You are about to deactivate acme", "Its applications stop working")
        assert_cancel_beside_submit(console)

    with console.step("deactivated: the banner says why"):
        console.fill("reason", "contract paused")
        console.click_button("Yes, deactivate")
        console.expect_path("/admin/clients/client/[0-9a-f-]{36}/change/")
        console.expect_message("Client acme is deactivated.")
        assert banner(console).startswith("Deactivated") and "contract paused" in banner(console), banner(console)
        offered = hub_operations(console)
        assert "Reactivate…" in offered and "Deactivate…" not in offered and "Issue invitation" not in offered
        assert Client.objects.get(code="acme").status == Client.Status.DEACTIVATED

    with console.step("reactivate from the page: the confirmation"):
        console.click_link("Reactivate…", within=".console-actions")
        console.expect_text("You are about to reactivate acme")

    with console.step("reactivated"):
        console.fill("reason", "contract renewed")
        console.click_button("Yes, reactivate")
        console.expect_message("Client acme is active again.")
        assert banner(console).startswith("Active"), banner(console)
        assert "Issue invitation" in hub_operations(console)
        assert Client.objects.get(code="acme").status == Client.Status.ACTIVE


def test_application(console, platform_admin, make_client):
    make_client("acme", tier="pro")
    sign_in(console, platform_admin)

    with console.step("the client's page"):
        console.open_client("acme")

    with console.step("add application: the client is filled in, its tier's features offered"):
        console.click_link("Add application", within=".object-tools")
        console.expect_path("/admin/clients/application/add/")
        assert console.driver.find_element(By.CSS_SELECTOR, ".field-client .select2-selection").text.endswith("acme")
        console.expect_text("Tier Pro of acme allows")

    with console.step("a bad configuration is refused, what was typed is kept"):
        console.fill("app_code", "onboarding")
        console.fill("name", "Onboarding")
        console.fill("configuration", BAD_CONFIGURATION)
        console.driver.find_element(By.CSS_SELECTOR, "input[name=features][value=sso]").click()
        console.save()
        console.expect_path("/admin/clients/application/add/")
        errors = console.field_errors("configuration")
        assert "locale" in errors and "colour" in errors, errors
        assert console.value("app_code") == "onboarding" and console.value("name") == "Onboarding"
        assert console.driver.find_element(By.CSS_SELECTOR, "input[name=features][value=sso]").is_selected()
        assert not Application.objects.exists()

    with console.step("with a good configuration it is created"):
        console.fill("configuration", GOOD_CONFIGURATION)
        console.save()
        console.expect_message("was added successfully")
        application = Application.objects.get(client__code="acme", app_code="onboarding")
        assert application.configuration["branding"]["display_name"] == "Acme Onboarding"
        assert application.features == ["sso"]

    with console.step("its page shows the configuration"):
        console.click_link("onboarding", within="#result_list")
        assert "Acme Onboarding" in console.value("configuration")


def test_erase(console, platform_admin, make_client):
    acme = make_client("acme", tier="pro")
    secret = vault_services.set_secret(
        actor=None, client=acme, provider="slack", secret_type="api_key", value="xoxb-1234-acme-slack-token"
    )
    sign_in(console, platform_admin)

    with console.step("the client's page: its secret is set"):
        console.open_client("acme")
        assert "set (data key v1)" in console.show("#secrets").text

    with console.step("erase asks to confirm it is you"):
        console.click_link("Erase…", within=".console-actions")
        console.expect_path("/admin/elevate/")

    with console.step("confirmed: the code is asked"):
        confirm_it_is_you(console, platform_admin)
        console.expect_path("/admin/clients/client/[0-9a-f-]{36}/erase/")
        console.expect_text("Erasure cannot be undone", "Type the client's code (acme) to confirm")
        assert_cancel_beside_submit(console)

    with console.step("a wrong code is refused and the page stays"):
        console.fill("confirm", "acne")
        console.click_button("Erase acme")
        console.expect_path("/admin/clients/client/[0-9a-f-]{36}/erase/")
        error = console.driver.find_element(By.CSS_SELECTOR, "form .errornote").text
        assert "acme" in error, error
        assert console.value("confirm") == "acne"
        assert not DataKey.objects.filter(client=acme, status=DataKey.Status.DESTROYED).exists()

    with console.step("the right code: the client shows as erased"):
        console.fill("confirm", "acme")
        console.click_button("Erase acme")
        console.expect_path(f"/admin/clients/client/{acme.pk}/change/")
        console.expect_message("Client acme is erased")
        assert banner(console).startswith("Erased") and "unrecoverable" in banner(console), banner(console)
        offered = hub_operations(console)
        for operation in ("Issue invitation", "Add secret", "Deactivate…", "Reactivate…", "Erase…"):
            assert operation not in offered, offered
        assert DataKey.objects.filter(client=acme, status=DataKey.Status.DESTROYED).exists()

    with console.step("its secrets are listed as unrecoverable"):
        secrets = console.show("#secrets").text
        assert "unrecoverable (client erased)" in secrets and "set (data key" not in secrets, secrets

    with console.step("the clients list says Erased"):
        console.open("/admin/clients/client/")
        assert "Erased" in console.row("acme").text

    with console.step("its secret: unrecoverable, no reveal offered"):
        console.open(f"/admin/vault/secret/{secret.pk}/change/")
        assert console.readonly("value_state") == "unrecoverable (client erased)"
        assert "Reveal" not in console.text
