"""Reading the trail: from the client's page to its events in the audit list, narrowed by action; one event's page;
search, a date range, sign-ins shown or hidden; an export that verifies offline."""

from __future__ import annotations

import json

from django.utils import timezone
from selenium.webdriver.common.by import By

from audit.models import AuditEvent
from clients import services as client_services
from tests_browser.staff import confirm_it_is_you, sign_in


def column(console, name: str) -> list[str]:
    return [cell.text for cell in console.driver.find_elements(By.CSS_SELECTOR, f"#result_list .field-{name}")]


def test_trail(console, platform_admin, make_client, manage, tmp_path):
    acme = make_client("acme", tier="pro")
    make_client("globex")
    client_services.deactivate_client(actor=platform_admin.user, client=acme, reason="contract paused")
    client_services.reactivate_client(actor=platform_admin.user, client=acme)
    sign_in(console, platform_admin)

    with console.step("the client's page: its latest events"):
        console.open_client("acme")
        latest = console.show("#trail").text
        assert "client.deactivated" in latest and "client.reactivated" in latest, latest

    with console.step("its full trail: the client's events"):
        console.click_link("The full audit trail of acme", within="#trail")
        console.expect_path("/admin/audit/auditevent/")
        actions = column(console, "action")
        assert {"client.created", "client.deactivated", "client.reactivated"} <= set(actions), actions
        assert set(column(console, "client_code")) == {"acme"}

    with console.step("the whole trail: every client's events and the staff's"):
        console.open_model("audit.auditevent")
        console.expect_text("client.created", "client.deactivated", "staff.user_created")
        assert "globex" in column(console, "client_code")

    with console.step("one client's events, by the filter (search as you type: code or name)"):
        console.filter_by_autocomplete("client", "acm", "acme — ")
        assert set(column(console, "client_code")) == {"acme"}

    with console.step("narrowed to one group of actions, then one action"):
        console.click_link("clients (all)", within="#changelist-filter")
        assert set(column(console, "action")) == {"client.created", "client.deactivated", "client.reactivated"}
        console.click_link("client.deactivated", within="#changelist-filter")
        assert column(console, "action") == ["client.deactivated"]
        assert f"client={acme.pk}" in console.driver.current_url
        assert "action=client.deactivated" in console.driver.current_url

    with console.step("the event's page: who, what, why, and its place in the chain"):
        event = AuditEvent.objects.get(action="client.deactivated")
        console.click_link(console.row("client.deactivated").find_element(By.CSS_SELECTOR, "th a").text)
        console.expect_path(f"/admin/audit/auditevent/{event.pk}/change/")
        assert console.readonly("action") == "client.deactivated"
        assert console.readonly("client_code") == "acme"
        assert console.readonly("actor_label") == "alex"
        assert "contract paused" in console.readonly("changes_table")  # the change as old → new rows
        assert "active" in console.readonly("changes_table") and "deactivated" in console.readonly("changes_table")
        assert console.readonly("chain_position").startswith(f"seq {event.seq} of the chain of acme")
        assert "verifies" in console.readonly("link_verification").lower()
        assert console.readonly("hash") == event.hash and console.readonly("prev_hash") == event.prev_hash

    with console.step("searched by part of a label, in any case"):
        console.open_model("audit.auditevent")
        console.filter_by("q", "CME")
        assert set(column(console, "client_code")) == {"acme"}, column(console, "client_code")
        assert "client.deactivated" in column(console, "action")

    with console.step("a date range: today has the events, a past year none"):
        console.open_model("audit.auditevent")
        today = timezone.now().date().isoformat()
        console.filter_by_dates("date", today, today)
        assert "client.deactivated" in column(console, "action")
        console.filter_by_dates("date", "2020-01-01", "2020-12-31")
        assert column(console, "action") == []

    with console.step("sign-ins are hidden until shown"):
        console.open_model("audit.auditevent")
        assert "staff.login" not in column(console, "action")
        console.click_link("shown", within='#changelist-filter details[data-filter-title="sign-ins"]')
        assert "staff.login" in column(console, "action")

    with console.step("exporting a client's events asks to confirm it is you"):
        console.open_model("audit.auditevent")
        console.filter_by_autocomplete("client", "acm", "acme — ")
        shown = column(console, "action")
        console.run_action("Export the selected events (JSON Lines)", ["client.deactivated"])
        confirm_it_is_you(console, platform_admin)
        console.expect_path("/admin/audit/auditevent/")

    with console.step("exported: a JSON Lines file of those events that verifies offline"):
        export = console.download_by_action("Export the selected events (JSON Lines)", tmp_path, "audit-events.jsonl")
        lines = [json.loads(line) for line in export.read_text().splitlines()]
        assert sorted(line["action"] for line in lines) == sorted(shown)
        assert {line["client_code"] for line in lines} == {"acme"}
        checked = manage("verify_audit", "--file", str(export))
        assert checked.code == 0, checked.out + checked.err
        assert AuditEvent.objects.filter(action="audit.exported", actor_label="alex").count() == 1
