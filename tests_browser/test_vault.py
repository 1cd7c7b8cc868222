"""A client's secret in the console: added from the client's page, write-only, then revealed after
re-authenticating, with a reason."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests_browser.staff import confirm_it_is_you, sign_in
from vault.models import Secret, SecretAccess

VALUE = "xoxb-1234-acme-slack-token"


def test_secret(console, platform_admin, make_client):
    make_client("acme", tier="pro")
    sign_in(console, platform_admin)

    with console.step("the client's page"):
        console.open_client("acme")

    with console.step("add secret: the client is filled in"):
        console.click_link("Add secret", within=".object-tools")
        console.expect_path("/admin/vault/secret/add/")
        assert console.driver.find_element(By.CSS_SELECTOR, ".field-client .select2-selection").text.endswith("acme")

    with console.step("a new secret without a value is refused"):
        console.fill("provider", "slack")
        console.choose("secret_type", "API key")
        console.save()
        console.expect_path("/admin/vault/secret/add/")
        console.expect_field_error("value", "A new secret needs a value")
        assert not Secret.objects.exists()

    with console.step("with a value it is stored, and the value is not shown"):
        console.fill("value", VALUE)
        console.save()
        console.expect_message("was added successfully")
        secret = Secret.objects.get(client__code="acme", name="slack-api_key")
        assert VALUE not in console.driver.page_source

    with console.step("the client's page lists it, value set"):
        console.open_client("acme")
        assert "set (data key v1)" in console.show("#secrets").text

    with console.step("the secret's page offers a reveal"):
        console.click_link("slack-api_key", within="#secrets")
        console.expect_path(f"/admin/vault/secret/{secret.pk}/change/")
        assert console.readonly("value_state").startswith("set")
        assert VALUE not in console.driver.page_source

    with console.step("revealing asks to confirm it is you"):
        console.click_link("Reveal the value…")
        console.expect_path("/admin/elevate/")

    with console.step("confirmed: the reveal asks for a reason"):
        confirm_it_is_you(console, platform_admin)
        console.expect_path(f"/admin/vault/secret/{secret.pk}/reveal/")
        console.expect_text("Your name, the time and your reason are recorded")

    with console.step("revealed"):
        console.fill("reason", "ticket 4411: Slack integration check")
        console.click_button("Reveal the value")
        value = console.driver.find_element(By.CSS_SELECTOR, "textarea[aria-label='secret value']")
        assert value.get_attribute("value") == VALUE
        console.expect_text("shown on this page only")
        assert console.driver.find_element(By.CSS_SELECTOR, "[data-copy=secret-value]").is_displayed()
        access = SecretAccess.objects.get(secret_id=secret.pk, access_type=SecretAccess.Type.REVEAL)
        assert access.reason == "ticket 4411: Slack integration check"
