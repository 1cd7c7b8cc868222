"""An invitation's life in the console, from the client's page: issue it (e-mailed), copy and check its link,
resend it and revoke it from its own page."""

from __future__ import annotations

import email
from email import policy

from selenium.webdriver.common.by import By

from clients import services as client_services
from invitations.models import Invitation
from tests_browser.staff import sign_in
from vault.services import rotate_signing_key

LINK_PREFIX = "https://acme-corp.thepia.net/onboarding/invitation#token="
ADA = ("Ada Lovelace", "ada@acme-corp.thepia.net")


def issued_link(console) -> str:
    """The link on the page shown once after issuing."""
    link = console.driver.find_element(By.ID, "invitation-link").get_attribute("value").strip()
    assert link.startswith(LINK_PREFIX), link
    return link


def check(console, link: str) -> dict[str, str]:
    """Paste the whole link, as the invitee forwarded it, on "Check a token"; the verdict of each check."""
    console.open("/admin/invitations/invitation/")
    console.click_link("Check a token")
    console.fill("token", link)
    console.click_button("Check")
    console.expect_text("The token was read from the link.")
    rows = console.driver.find_elements(By.CSS_SELECTOR, "#content tbody tr")
    verdicts = {}
    for row in rows:
        label, verdict, *_ = (cell.text for cell in row.find_elements(By.TAG_NAME, "td"))
        verdicts[label] = verdict
    assert verdicts, "no verdicts shown"
    return verdicts


def mailed(folder) -> list:
    """The messages the development backend wrote, oldest first."""
    return [email.message_from_bytes(path.read_bytes(), policy=policy.default) for path in sorted(folder.glob("*.eml"))]


def test_invitation(console, platform_admin, make_client, settings, tmp_path):
    settings.EMAIL_BACKEND = "config.mail.EmlFileBackend"  # what `make run` uses: one .eml file per message
    settings.FLOWS_MAIL_DIR = tmp_path
    acme = make_client("acme", tier="pro")
    client_services.update_client(actor=None, client=acme, domain="acme-corp.thepia.net")
    client_services.configure_application(actor=None, client=acme, app_code="onboarding", name="Onboarding")
    rotate_signing_key(actor=None)
    sign_in(console, platform_admin)

    with console.step("the client's page"):
        console.open_client("acme")

    with console.step("issue invitation: the form, the client filled in"):
        console.click_link("Issue invitation", within=".object-tools")
        console.expect_path("/admin/invitations/invitation/add/")
        console.expect_text("Issue invitation", "They are not stored")
        assert console.driver.find_element(By.CSS_SELECTOR, "select[name=client] option:checked").text == "acme"

    with console.step("issued and e-mailed: the link is shown once"):
        console.choose("application", "acme / Onboarding (onboarding)")
        console.fill("full_name", ADA[0])
        console.fill("company_email", ADA[1])
        console.choose("validity_hours", "7 days")
        console.choose("send_to", "The company e-mail")
        console.click_button("Issue invitation")
        console.expect_text("Copy the link now")
        console.expect_message("The invitation link was e-mailed to the company address.")
        link = issued_link(console)
        invitation = Invitation.objects.get()
        console.expect_text(invitation.code)
        assert invitation.status == Invitation.Status.PENDING
        [message] = mailed(tmp_path)
        assert message["To"] == ADA[1]
        assert link in message.get_body(preferencelist=("plain",)).get_content()

    with console.step("copy link: the button says so and the clipboard holds the link"):
        console.allow_clipboard()
        button = console.press("Copy link")
        console.wait(lambda _d: button.text == "Copied", message="the copy button's success")
        assert console.clipboard() == link

    with console.step("check the link: every check passes"):
        verdicts = check(console, link)
        assert set(verdicts.values()) == {"pass"}, verdicts
        console.expect_text(f"Valid: {invitation.code}", "1 use left")

    with console.step("the invitation's page offers resend and revoke"):
        console.click_link(invitation.code, within="#content")
        console.expect_path(f"/admin/invitations/invitation/{invitation.pk}/change/")
        assert console.readonly("status") == "Pending"
        tools = console.driver.find_element(By.CSS_SELECTOR, ".object-tools").get_attribute("textContent")
        assert "Resend with a new token…" in tools and "Revoke…" in tools, tools

    with console.step("resend: the invitee's data is asked again"):
        console.click_link("Resend with a new token", within=".object-tools")
        console.expect_text(f"A new token for {invitation.code}", "The previous token stops working at once")

    with console.step("resent: a new link"):
        console.fill("full_name", ADA[0])
        console.fill("company_email", ADA[1])
        console.click_button("Issue a new token")
        console.expect_text("Copy the link now")
        new_link = issued_link(console)
        assert new_link != link
        invitation.refresh_from_db()
        assert invitation.resend_count == 1

    with console.step("the old link is refused now"):
        verdicts = check(console, link)
        assert verdicts["Current token (not resent or altered)"] == "fail", verdicts
        console.expect_text("it was resent or altered")

    with console.step("revoke from its page: the confirmation asks a reason"):
        console.open(f"/admin/invitations/invitation/{invitation.pk}/change/")
        console.click_link("Revoke…", within=".object-tools")
        console.expect_path(f"/admin/invitations/invitation/{invitation.pk}/revoke/")
        console.expect_text(f"You are about to revoke {invitation.code}", "This cannot be undone")

    with console.step("without a reason it is refused, and the page stays"):
        console.click_button("Yes, revoke")
        console.expect_path(f"/admin/invitations/invitation/{invitation.pk}/revoke/")
        console.expect_field_error("reason", "Say why the invitation is revoked")
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.PENDING

    with console.step("revoked"):
        console.fill("reason", "sent to the wrong address")
        console.click_button("Yes, revoke")
        console.expect_path(f"/admin/invitations/invitation/{invitation.pk}/change/")
        console.expect_message(f"Invitation {invitation.code} is revoked.")
        assert console.readonly("status") == "Revoked"
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.REVOKED
        assert invitation.revoke_reason == "sent to the wrong address"

    with console.step("the new link is refused too"):
        verdicts = check(console, new_link)
        assert verdicts["Current token (not resent or altered)"] == "pass", verdicts
        assert verdicts["Not revoked"] == "fail", verdicts
