"""The audit changelist at scale: keyset pages without COUNT(*), investigators' filters, indexed search, event page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.db import connections, transaction
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.context import Origin, reset_origin, set_origin
from audit.models import KNOWN_ACTIONS, AuditEvent
from audit.selectors import ACTION_GROUP_PREFIXES, SIGN_IN_ACTIONS, action_group
from audit.services import record
from clients import services as client_services
from staff.elevation import SESSION_KEY
from staff.services import create_staff_user, grant_client_access
from vault import services as vault_services

pytestmark = pytest.mark.django_db(databases="__all__")

CHANGELIST = "admin:audit_auditevent_changelist"


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("auditor", "auditor@thepia.net", "not-used")
    client.force_login(user)
    return user


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(admin.site._registry[AuditEvent], "list_per_page", 3)


def events_on(page) -> list[AuditEvent]:
    return list(page.context["cl"].result_list)


def get(client, query: str = ""):
    response = client.get(reverse(CHANGELIST) + query)
    assert response.status_code == 200
    return response


def write(action: str, *, client=None, actor=None, **fields) -> AuditEvent:
    with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
        return record(actor=actor, action=action, client=client, **fields)


def captured(client, url: str):
    client.get(url)  # warm the per-process caches (content types, permissions)
    with CaptureQueriesContext(connections[settings.CONSOLE_DB_ALIAS]) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return response, [query["sql"] for query in queries.captured_queries]


def older_link(page) -> str:
    return page.context["cl"].older_url


# --- Pagination -----------------------------------------------------------------------------------


def test_keyset_pages_walk_every_event_once_newest_first_and_back(client, staff, make_client, small_pages):
    acme = make_client("acme")
    for n in range(10):
        write("client.updated", client=acme, changes={"n": n})
    expected = list(AuditEvent.objects.exclude(action__in=SIGN_IN_ACTIONS).order_by("-occurred_at", "-id"))
    seen, page, pages = [], get(client), []
    while True:
        pages.append(page)
        seen += events_on(page)
        if not older_link(page):
            break
        page = get(client, older_link(page))
    assert [e.pk for e in seen] == [e.pk for e in expected] and len(pages) == 4
    back = get(client, pages[2].context["cl"].newer_url)
    assert [e.pk for e in events_on(back)] == [e.pk for e in events_on(pages[1])]
    assert pages[0].context["cl"].newer_url is None and "newest" in pages[1].content.decode()
    assert 'name="older"' not in pages[1].content.decode()  # a new search or date starts from the newest


def test_no_count_query_and_the_same_queries_on_the_first_and_a_deep_page(client, staff, make_client, small_pages):
    acme = make_client("acme")
    for n in range(12):
        write("client.updated", client=acme, target=acme, changes={"n": n})
    first, first_sql = captured(client, reverse(CHANGELIST))
    page = first
    for _ in range(3):
        page = get(client, older_link(page))
    deep_url = reverse(CHANGELIST) + older_link(page)
    _, deep_sql = captured(client, deep_url)
    assert len(first_sql) == len(deep_sql)
    for sql in first_sql + deep_sql:
        assert not re.search(r"\bCOUNT\s*\(", sql, re.IGNORECASE), sql
    assert "an estimate" in first.content.decode()  # more than one page: the planner's estimate, labelled
    _, filtered_sql = captured(client, reverse(CHANGELIST) + f"?client={acme.pk}&q=acme&occurred_from=2000-01-01")
    assert not any(re.search(r"\bCOUNT\s*\(", sql, re.IGNORECASE) for sql in filtered_sql)


def test_a_single_page_shows_the_exact_number(client, staff, make_client):
    make_client("acme")
    page = get(client, "?q=acme")
    assert page.context["cl"].estimated is False
    assert f"{len(events_on(page))} audit event" in page.content.decode()


def test_a_broken_page_link_shows_the_newest_events_with_a_message(client, staff, make_client):
    make_client("acme")
    page = get(client, "?older=yesterday|1")
    assert "not valid" in page.content.decode() and events_on(page)


# --- Filters --------------------------------------------------------------------------------------


def test_client_filter_by_id_or_code_and_its_autocomplete(client, staff, make_client):
    acme, globex = make_client("acme"), make_client("globex")
    for query in (f"?client={acme.pk}", "?client=acme", "?client=ACME"):
        page = get(client, query)
        assert {e.client_code for e in events_on(page)} == {"acme"}
        assert "acme — Acme Ltd" in page.content.decode()  # the chosen client, shown by its label
    assert events_on(get(client, "?client=nobody")) == []
    by_name = client.get(reverse("admin:audit_auditevent_clients"), {"term": "Glob"}).json()
    assert by_name["results"] == [{"id": str(globex.pk), "text": "globex — Globex Ltd"}]
    by_code = client.get(reverse("admin:audit_auditevent_clients"), {"term": "acm"}).json()
    assert [r["id"] for r in by_code["results"]] == [str(acme.pk)]


def test_action_filter_by_group_and_by_action(client, staff, make_client):
    acme = make_client("acme")
    client_services.configure_application(actor=None, client=acme, app_code="onboarding")
    vault_services.set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="x" * 20)
    vault_page = get(client, "?action=group:vault")
    assert {action_group(e.action) for e in events_on(vault_page)} == {"vault"}
    assert "secret.created" in vault_page.content.decode()  # the chosen group lists its actions
    assert {e.action for e in events_on(get(client, "?action=application.created"))} == {"application.created"}
    assert {action_group(e.action) for e in events_on(get(client, "?action=group:clients"))} == {"clients"}


def test_every_known_action_is_in_exactly_one_group():
    groups = {action: action_group(action) for action in KNOWN_ACTIONS}
    assert None not in groups.values(), [a for a, g in groups.items() if g is None]
    assert set(groups.values()) == set(ACTION_GROUP_PREFIXES)
    assert {a for a, g in groups.items() if g == "sign-ins"} == set(SIGN_IN_ACTIONS)


def test_sign_ins_are_hidden_by_default_and_shown_on_request(client, staff, make_client):
    make_client("acme")
    login = write("staff.login", actor=staff)
    failed = write("staff.mfa_failed", actor=staff)
    default = {e.pk for e in events_on(get(client))}
    assert login.pk not in default and failed.pk in default
    assert "hidden (staff.login" in get(client).content.decode()  # the toggle is visible
    assert login.pk in {e.pk for e in events_on(get(client, "?sign_ins=shown"))}
    logins = set(AuditEvent.objects.filter(action="staff.login").values_list("pk", flat=True))  # force_login's too
    assert login.pk in logins
    assert {e.pk for e in events_on(get(client, "?action=staff.login"))} == logins
    assert {e.pk for e in events_on(get(client, "?action=group:sign-ins"))} == logins


def test_actor_filter_and_its_autocomplete(client, staff, make_client):
    acme = make_client("acme")
    mine = write("client.updated", client=acme, actor=staff)
    page = get(client, f"?actor=user:{staff.pk}")
    assert [e.pk for e in events_on(page)] == [mine.pk] and "auditor (staff user)" in page.content.decode()
    assert mine.pk not in {e.pk for e in events_on(get(client, "?actor=system"))}
    assert {e.actor_type for e in events_on(get(client, "?actor=system"))} == {"system"}
    api_key, _ = client_services.create_api_key(actor=None, client=acme, name="prod", scopes=["configuration:read"])
    found = client.get(reverse("admin:audit_auditevent_actors"), {"term": "audit"}).json()["results"]
    assert {"id": f"user:{staff.pk}", "text": "auditor (staff user)"} in found
    found = client.get(reverse("admin:audit_auditevent_actors"), {"term": api_key.prefix}).json()["results"]
    assert [r["id"] for r in found] == [f"api_key:{api_key.pk}"]
    bad = get(client, "?actor=robot:1")
    assert events_on(bad) == [] and "Unknown actor" in bad.content.decode()


def test_autocomplete_filters_load_the_admins_own_select2_in_order(client, staff, make_client):
    make_client("acme")
    page = get(client).content.decode()
    scripts = re.findall(r'<script src="/static/([^"]+)"', page)
    wanted = ["admin/js/vendor/jquery/jquery.js", "admin/js/vendor/select2/select2.full.js",
              "admin/js/jquery.init.js", "admin/js/autocomplete.js", "audit/changelist_filters.js"]  # fmt: skip
    assert [script for script in scripts if script in wanted] == wanted
    assert 'class="admin-autocomplete audit-autocomplete-filter"' in page
    assert reverse("admin:audit_auditevent_clients") in page and reverse("admin:audit_auditevent_actors") in page


def test_actor_type_filter(client, staff, make_client):
    acme = make_client("acme")
    write("client.updated", client=acme, actor=staff)
    assert {e.actor_type for e in events_on(get(client, "?actor_type__exact=user"))} == {"user"}


def test_date_range_filter_from_and_to_inclusive(client, staff, make_client):
    make_client("acme")
    today = timezone.now().date()
    assert events_on(get(client, f"?occurred_from={today}&occurred_to={today}"))
    assert events_on(get(client, f"?occurred_to={today - timedelta(days=1)}")) == []
    assert events_on(get(client, f"?occurred_from={today + timedelta(days=1)}")) == []
    bad = get(client, "?occurred_from=31/12/2026")
    assert "is not a date" in bad.content.decode() and events_on(bad)  # the bad bound is not applied


# --- Search ---------------------------------------------------------------------------------------


def test_search_covers_actor_and_target_labels_target_id_client_code_and_request_id(client, staff, make_client):
    make_client("acme")
    globex = make_client("globex")
    secret = vault_services.set_secret(actor=staff, client=globex, provider="slack", secret_type="api_key",
                                       value="x" * 20)  # fmt: skip
    searches = {
        "udito": lambda e: "udito" in e.actor_label,  # part of the actor label, any case
        "LACK-API": lambda e: "lack-api" in e.target_label.lower(),  # part of the target label
        str(secret.pk): lambda e: e.target_id == str(secret.pk),
        "acme": lambda e: e.client_code == "acme" or "acme" in (e.actor_label + e.target_label).lower(),
    }
    for term, matches in searches.items():
        found = events_on(get(client, f"?q={term}"))
        assert found and all(matches(e) for e in found), term
    assert "globex" not in {e.client_code for e in events_on(get(client, "?q=acme"))}
    # Below three characters only the exact matches run (no trigram can serve a substring that short).
    assert events_on(get(client, "?q=ud")) == []


def test_search_by_request_id(client, staff, make_client):
    acme = make_client("acme")
    token = set_origin(Origin(ip="192.0.2.1", request_id="req-4242-abcd"))  # what the middleware sets per request
    try:
        event = write("client.updated", client=acme)
    finally:
        reset_origin(token)
    assert [e.pk for e in events_on(get(client, "?q=req-4242-abcd"))] == [event.pk]


@pytest.mark.parametrize(
    ("term", "index"),
    [
        ("0f0e3e3c-1111-4a4a-9b9b-000000000000", "auditevent_target_id"),
        ("req-1234", "auditevent_request"),
        ("acme", "auditevent_client_time"),
    ],
)
def test_every_search_arm_is_served_by_an_index(staff, make_client, term, index):
    # The label arms: tests/audit/test_search.py (the label table's trigram index, then one index per label).
    make_client("acme")
    request = RequestFactory().get("/")
    request.user = staff
    model_admin = admin.site._registry[AuditEvent]
    events, _ = model_admin.get_search_results(request, AuditEvent.objects.all(), term)
    with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
        with connections[settings.CONSOLE_DB_ALIAS].cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
        plan = events.order_by().using(settings.CONSOLE_DB_ALIAS).explain()
    assert index in plan and "Seq Scan on audit_auditevent" not in plan, plan


# --- Scoping --------------------------------------------------------------------------------------


def test_a_scoped_user_sees_only_their_clients_events_through_every_door(client, make_client):
    acme, globex = make_client("acme"), make_client("globex")
    user = create_staff_user(actor=None, username="support", email="support@thepia.net", role="Support")
    grant_client_access(actor=None, user=user, client=acme)
    user = User.objects.get(pk=user.pk)
    user.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(user)
    assert {e.client_code for e in events_on(get(client))} == {"acme"}
    assert events_on(get(client, f"?client={globex.pk}")) == []
    assert events_on(get(client, "?q=globex")) == []
    clients = client.get(reverse("admin:audit_auditevent_clients"), {"term": ""}).json()["results"]
    assert [r["id"] for r in clients] == [str(acme.pk)]
    globex_event = AuditEvent.objects.filter(client_id=globex.pk).first()
    assert client.get(reverse("admin:audit_auditevent_change", args=[globex_event.pk])).status_code == 404


# --- The event page -------------------------------------------------------------------------------


def test_targets_link_while_they_exist(client, staff, make_client):
    acme = make_client("acme")
    secret = vault_services.set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="x" * 20)
    secret_url = reverse("admin:vault_secret_change", args=[secret.pk])
    assert secret_url in get(client, "?action=secret.created").content.decode()
    vault_services.delete_secret(actor=None, secret=secret)
    page = get(client, "?action=secret.created").content.decode()
    assert secret_url not in page and "no longer exists" in page


def test_client_and_user_pages_link_to_their_trails(client, staff, make_client):
    session = client.session
    session[SESSION_KEY] = (timezone.now() + timedelta(minutes=5)).isoformat()  # the user page needs elevation
    session.save()
    acme = make_client("acme")
    page = client.get(reverse("admin:clients_client_change", args=[acme.pk])).content.decode()
    assert f"{reverse(CHANGELIST)}?client={acme.pk}" in page
    page = client.get(reverse("admin:auth_user_change", args=[staff.pk])).content.decode()
    assert f"{reverse(CHANGELIST)}?actor=user%3A{staff.pk}" in page
