"""An invitation's life in the console: issue it and read its link, check it, resend it, revoke it."""

from __future__ import annotations

from urllib.parse import unquote

from selenium.webdriver.common.by import By

from clients import services as client_services
from invitations.models import Invitation
from tests_browser.staff import sign_in
from vault.services import rotate_signing_key

LINK_PREFIX = "https://acme-corp.thepia.net/onboarding/invitation#token="


def issued_link(console) -> str:
    """The link on the page shown once after issuing (and the token it carries)."""
    link = console.driver.find_element(By.ID, "invitation-link").get_attribute("value").strip()
    assert link.startswith(LINK_PREFIX), link
    return link


def token_of(link: str) -> str:
    return unquote(link.removeprefix(LINK_PREFIX))


def check(console, token: str) -> dict[str, str]:
    """Paste on "Check a token" and read the verdict of each check."""
    console.open("/admin/invitations/invitation/")
    console.click_link("Check a token")
    console.fill("token", token)
    console.click_button("Check")
    rows = console.driver.find_elements(By.CSS_SELECTOR, "#content tbody tr")
    verdicts = {}
    for row in rows:
        label, verdict, *_ = (cell.text for cell in row.find_elements(By.TAG_NAME, "td"))
        verdicts[label] = verdict
    assert verdicts, "no verdicts shown"
    return verdicts


def test_invitation(console, platform_admin, make_client):
    acme = make_client("acme", tier="pro")
    client_services.update_client(actor=None, client=acme, domain="acme-corp.thepia.net")
    client_services.configure_application(actor=None, client=acme, app_code="onboarding", name="Onboarding")
    rotate_signing_key(actor=None)
    sign_in(console, platform_admin)

    with console.step("the invitations list"):
        console.open_model("invitations.invitation")
        console.expect_path("/admin/invitations/invitation/")

    with console.step("the issue form"):
        console.click_link("Issue invitation", within=".object-tools")
        console.expect_text("Issue invitation", "They are not stored")

    with console.step("issued: the link is shown once"):
        console.choose("client", "acme")
        console.choose("application", "acme / onboarding (Onboarding)")
        console.fill("full_name", "Ada Lovelace")
        console.fill("company_email", "ada@acme-corp.thepia.net")
        console.choose("validity_hours", "7 days")
        console.click_button("Issue invitation")
        console.expect_text("Copy the link now")
        link = issued_link(console)
        invitation = Invitation.objects.get()
        console.expect_text(invitation.code)
        assert invitation.status == Invitation.Status.PENDING

    with console.step("check the token: every check passes"):
        verdicts = check(console, token_of(link))
        assert set(verdicts.values()) == {"pass"}, verdicts
        console.expect_text(f"Valid: {invitation.code}", "1 use(s) left")

    with console.step("the invitation's page"):
        console.click_link(invitation.code, within="#content")
        console.expect_path(f"/admin/invitations/invitation/{invitation.pk}/change/")
        assert console.readonly("status") == "Pending"

    with console.step("resend: the invitee's data is asked again"):
        console.click_link("Resend with a new token")
        console.expect_text(f"A new token for {invitation.code}", "The previous token stops working at once")

    with console.step("resent: a new link"):
        console.fill("full_name", "Ada Lovelace")
        console.fill("company_email", "ada@acme-corp.thepia.net")
        console.click_button("Issue a new token")
        console.expect_text("Copy the link now")
        new_link = issued_link(console)
        assert new_link != link
        invitation.refresh_from_db()
        assert invitation.resend_count == 1

    with console.step("the old token is refused now"):
        verdicts = check(console, token_of(link))
        assert verdicts["Current token (not resent or altered)"] == "fail", verdicts
        console.expect_text("it was resent or altered")

    with console.step("revoke: the confirmation asks for a reason"):
        console.open("/admin/invitations/invitation/")
        console.run_action("Revoke selected invitations", [invitation.code])
        console.expect_text("You are about to revoke 1", invitation.code, "This cannot be undone")

    with console.step("revoked"):
        console.fill("reason", "sent to the wrong address")
        console.click_button("Yes, revoke")
        console.expect_message("Revoked 1 invitation")
        assert "Revoked" in console.row(invitation.code).text
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.REVOKED
        assert invitation.revoke_reason == "sent to the wrong address"

    with console.step("the new token is refused too"):
        verdicts = check(console, token_of(new_link))
        assert verdicts["Current token (not resent or altered)"] == "pass", verdicts
        assert verdicts["Not revoked"] == "fail", verdicts
