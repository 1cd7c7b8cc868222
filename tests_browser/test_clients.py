"""Clients and their applications: create with a bad then a good value, deactivate and reactivate."""

from __future__ import annotations

from clients.models import Application, Client
from tests_browser.staff import sign_in

GOOD_CONFIGURATION = """{
  "locale": "en-GB",
  "timezone": "Europe/London",
  "branding": {"display_name": "Acme Onboarding", "primary_color": "#0a7cff"},
  "notifications": {"email": true, "reminder_days": [1, 3, 7]}
}"""
# Two mistakes a person makes: a locale written out, a property that does not exist.
BAD_CONFIGURATION = '{"locale": "English", "colour": "#0a7cff"}'


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
        console.expect_text("acme-corp.thepia.net")
        assert Client.objects.get(code="acme").domain == "acme-corp.thepia.net"

    with console.step("deactivate: the confirmation asks for a reason"):
        console.open("/admin/clients/client/")
        console.run_action("Deactivate selected clients", ["acme-corp.thepia.net"])
        console.expect_text("You are about to deactivate 1", "acme", "stop working until")

    with console.step("deactivated"):
        console.fill("reason", "contract paused")
        console.click_button("Yes, deactivate")
        console.expect_message("Deactivated 1 client")
        assert "Deactivated" in console.row("acme-corp.thepia.net").text
        assert Client.objects.get(code="acme").status == Client.Status.DEACTIVATED

    with console.step("reactivate: the confirmation"):
        console.run_action("Reactivate selected clients", ["acme-corp.thepia.net"])
        console.expect_text("You are about to reactivate 1", "acme")

    with console.step("reactivated"):
        console.click_button("Yes, reactivate")
        console.expect_message("Reactivated 1 client")
        assert "Active" in console.row("acme-corp.thepia.net").text
        assert Client.objects.get(code="acme").status == Client.Status.ACTIVE

    with console.step("the client's page"):
        console.click_link("acme", within="#result_list")
        console.expect_text("Active")
        assert console.value("legal_name") == "Acme Corporation"
        assert console.value("domain") == "acme-corp.thepia.net"


def test_application(console, platform_admin, make_client):
    make_client("acme", tier="pro")
    sign_in(console, platform_admin)

    with console.step("the applications list"):
        console.open_model("clients.application")
        console.expect_path("/admin/clients/application/")

    with console.step("a new application with a bad configuration is refused, what was typed is kept"):
        console.click_link("Add application")
        console.choose_autocomplete("client", "ac", "acme")
        console.fill("app_code", "onboarding")
        console.fill("name", "Onboarding")
        console.fill("configuration", BAD_CONFIGURATION)
        console.fill("features", "sso")
        console.save()
        console.expect_path("/admin/clients/application/add/")
        errors = console.field_errors("configuration")
        assert "locale" in errors and "colour" in errors, errors
        assert console.value("app_code") == "onboarding" and console.value("features") == "sso"
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
