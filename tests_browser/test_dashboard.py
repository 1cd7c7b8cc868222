"""The dashboard on the console's index: its figures and its charts, drawn from the data as a person sees them."""

from __future__ import annotations

from datetime import timedelta

from selenium.webdriver.common.by import By

from clients import services as client_services
from invitations import services as invitation_services
from invitations.services import Invitee
from tests_browser.staff import sign_in
from vault.services import rotate_signing_key

CHARTS = ("chart-invitations", "chart-tiers", "chart-seats")


def test_dashboard(console, platform_admin, make_client):
    acme = make_client("acme", tier="pro")
    make_client("globex", tier="free")
    initech = make_client("initech", tier="pro")
    client_services.deactivate_client(actor=None, client=initech, reason="contract ended")
    onboarding = client_services.configure_application(
        actor=None, client=acme, app_code="onboarding", name="Onboarding"
    )
    rotate_signing_key(actor=None)
    issued = [
        invitation_services.issue_invitation(
            actor=None,
            client=acme,
            application=onboarding,
            invitee=Invitee(f"Invitee {n}", f"invitee{n}@acme.thepia.net"),
            expires_in=timedelta(hours=24 if n == 0 else 168),
        )[0]
        for n in range(3)
    ]
    invitation_services.revoke_invitation(actor=None, invitation=issued[2], reason="sent twice")
    sign_in(console, platform_admin)

    with console.step("the dashboard: tiles with the figures that need attention"):
        console.expect_path("/admin/")
        dashboard = console.driver.find_element(By.ID, "dashboard")
        assert dashboard.is_displayed()
        tiles = [" ".join(tile.text.split()) for tile in dashboard.find_elements(By.CSS_SELECTOR, ".tile")]
        assert "3 clients" in tiles, tiles
        assert "1 pending invitation expiring in the next 48 hours" in tiles, tiles
        assert "0 secrets expiring in the next 30 days" in tiles, tiles
        assert any(tile.startswith("Overdue cleanup_invitations: never run") for tile in tiles), tiles

    with console.step("the dashboard uses the window's width: tiles in a row, panels in a grid of two columns"):
        width = console.driver.execute_script("return document.documentElement.clientWidth")
        assert dashboard.size["width"] > 0.85 * width, (dashboard.size, width)  # once a 600 px column
        panels = dashboard.find_elements(By.CSS_SELECTOR, ".panels > .panel")
        columns = sorted({panel.location["x"] for panel in panels})
        assert len(columns) == 2, [panel.rect for panel in panels]
        tops = {tile.location["y"] for tile in dashboard.find_elements(By.CSS_SELECTOR, ".tile")}
        assert len(tops) == 1, tops

    with console.step("the charts are drawn, each with its figures"):
        for chart_id in CHARTS:
            chart = console.driver.find_element(By.ID, chart_id)
            assert chart.is_displayed() and chart.size["height"] > 20 and chart.size["width"] > 300, chart_id
            assert chart.find_elements(By.CSS_SELECTOR, "rect"), f"{chart_id} has no bars"
        described = {
            chart_id: console.driver.find_element(By.ID, f"{chart_id}-desc").get_attribute("textContent")
            for chart_id in CHARTS
        }
        assert "issued: 3 in all" in described["chart-invitations"].lower(), described
        assert "revoked: 1 in all" in described["chart-invitations"].lower(), described
        assert "Pro: 2" in described["chart-tiers"] and "Free: 1" in described["chart-tiers"], described
        assert described["chart-seats"].startswith("acme: 2 / "), described

    with console.step("the figures as a table, below the chart"):
        panel = console.driver.find_element(By.XPATH, "//div[h2='Invitations per week']")
        panel.find_element(By.TAG_NAME, "summary").click()
        console.driver.execute_script("arguments[0].scrollIntoView()", panel)
        this_week = panel.find_elements(By.CSS_SELECTOR, "details tbody tr")[-1]
        cells = [cell.text for cell in this_week.find_elements(By.TAG_NAME, "td")]
        assert cells[1:] == ["3", "0", "0", "1"], cells  # issued, redeemed, expired, revoked
        rows = {
            row.find_element(By.TAG_NAME, "th").text: row.text
            for row in console.driver.find_elements(By.XPATH, "//div[h2='Clients by tier and status']//tbody/tr")
        }
        assert set(rows) == {"Free", "Pro"}, rows
        # Column headers read on one line, no taller than a row (the admin's index styles once squeezed them to
        # one letter a line).
        for table in console.driver.find_elements(By.CSS_SELECTOR, "#dashboard table"):
            if not table.is_displayed() or not table.find_elements(By.CSS_SELECTOR, "tbody tr"):
                continue
            row_height = table.find_element(By.CSS_SELECTOR, "tbody tr").size["height"]
            squeezed = [
                th.text
                for th in table.find_elements(By.CSS_SELECTOR, "thead th")
                if th.size["height"] > 1.5 * row_height
            ]
            assert not squeezed, f"column headers wrapped: {squeezed}"

    with console.step("the lists below the charts link to the rows"):
        expiring = console.driver.find_element(By.XPATH, "//div[starts-with(h2, 'Invitations expiring')]")
        console.driver.execute_script("arguments[0].scrollIntoView()", expiring)
        assert issued[0].code in expiring.text, expiring.text
        assert issued[1].code not in expiring.text
