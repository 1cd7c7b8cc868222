"""The changelist's search over the table of distinct labels (audit/migrations/0008): kept by the trigger for every
role that writes events, closed to the tenant role, and finding exactly what a plain `icontains` finds."""

from __future__ import annotations

import re
import threading

import psycopg
import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.messages.storage.cookie import CookieStorage
from django.db import connections, transaction
from django.db.models import Q
from django.test import RequestFactory
from django.urls import reverse

from audit import admin as audit_admin
from audit.models import AuditEvent, SearchLabel
from audit.selectors import SIGN_IN_ACTIONS
from audit.services import record
from clients.models import Client
from clients.tenancy import tenant_context
from tests.audit.test_admin import CHANGELIST, captured, events_on, get, older_link, staff, write  # noqa: F401

db = pytest.mark.django_db(databases="__all__")

# Labels an investigator meets, and labels built to trip a LIKE: wildcards, the escape character, case, unicode.
LABELS = [
    "Acme Slack webhook",
    "acme-stripe webhook_secret",
    "100% discount coupon",
    "under_score and 50%",
    "back\\slash path C:\\temp",
    "Zoë Straße Ärger",
    "日本語のラベル",
    "O'Brien; DROP TABLE x",
    "ACME SLACK WEBHOOK",  # the same label upper-cased: one row in the label table, both events found
]
TERMS = [
    "slack", "SLACK", "ck webh",  # ordinary, any case, in the middle
    "webhook",  # several labels
    "%", "50%", "100%", "_", "e_s", "r_s", "\\", "h C:\\t", "%%%", "a%b", "_%_",  # the LIKE wildcards and escape
    "zoë", "STRASSE", "straße", "ärg", "本語の",  # unicode
    "O'Brien", "'; DROP", "nothing at all", "ac", "acme",  # a quote, no match, too short, a client's code
]  # fmt: skip


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(admin.site._registry[AuditEvent], "list_per_page", 2)


@pytest.fixture
def trail(make_client):
    acme, globex = make_client("acme"), make_client("globex")
    for n, label in enumerate(LABELS):
        write("secret.used", client=acme if n % 2 else globex, target_label=label, target_type="vault.secret",
              target_id=f"t-{n}")  # fmt: skip
    return acme, globex


def expected(term: str) -> list[int]:
    """What a plain search finds: icontains over both labels (3 characters or more), exact target id, request id and
    client code, sign-ins hidden as by default; newest first."""
    matches = Q(target_id=term) | Q(request_id=term) | Q(client_id__in=Client.objects.filter(code=term.lower()))
    if len(term) >= audit_admin.MIN_SUBSTRING:
        matches |= Q(actor_label__icontains=term) | Q(target_label__icontains=term)
    events = AuditEvent.objects.exclude(action__in=SIGN_IN_ACTIONS).filter(matches)
    return list(events.order_by("-occurred_at", "-id").values_list("pk", flat=True))


def found(client, term: str) -> list[int]:
    """Every page of the search, following the "older" links."""
    page = client.get(reverse(CHANGELIST), {"q": term})
    assert page.status_code == 200
    ids = [event.pk for event in events_on(page)]
    while older_link(page):
        page = get(client, older_link(page))
        ids += [event.pk for event in events_on(page)]
    return ids


# --- The table follows the trail ------------------------------------------------------------------


@db
def test_the_trigger_keeps_the_label_table_current_for_the_console_role(make_client):
    acme = make_client("acme")
    write("client.updated", client=acme, target_label="Quarterly Zebra report")
    assert SearchLabel.objects.filter(field="target", label="QUARTERLY ZEBRA REPORT").exists()
    write("client.updated", client=acme, target_label="quarterly zebra REPORT")  # same label, other case: no new row
    assert SearchLabel.objects.filter(label="QUARTERLY ZEBRA REPORT").count() == 1
    assert not SearchLabel.objects.filter(label="").exists()  # an empty label (a system actor) is not a label


def test_the_trigger_keeps_the_label_table_current_for_the_tenant_role(committed, make_client):
    acme = make_client("acme")
    with tenant_context(acme):
        assert connections[settings.TENANT_DB_ALIAS].settings_dict["USER"] == settings.APP_ROLE
        record(actor=None, action="secret.used", client=acme, target_label="Tenant-written Label 7",
               using=settings.TENANT_DB_ALIAS)  # fmt: skip
    assert SearchLabel.objects.filter(field="target", label="TENANT-WRITTEN LABEL 7").exists()


def test_the_tenant_role_can_neither_read_nor_write_the_label_table(app_connection):
    for statement in (
        "SELECT count(*) FROM audit_searchlabel",
        "INSERT INTO audit_searchlabel (field, label) VALUES ('target', 'PLANTED')",
        "DELETE FROM audit_searchlabel",
        "SELECT audit_event_feeds_search_labels()",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_connection.execute(statement)
        app_connection.rollback()


def test_the_console_role_may_only_read_the_label_table(committed, make_client):
    make_client("acme")
    with connections[settings.CONSOLE_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_searchlabel")
        assert cursor.fetchone()[0] > 0
    from tests.conftest import connect_as

    with connect_as(settings.CONSOLE_DB_ALIAS) as connection, pytest.raises(psycopg.errors.InsufficientPrivilege):
        connection.execute("INSERT INTO audit_searchlabel (field, label) VALUES ('target', 'PLANTED')")


def _record_in_turn(client, labels: list[str], *, mine: threading.Event, theirs: threading.Event, hold: bool):
    """record() one event per label for `client` in one console transaction (lock_timeout 5 s), waiting between them
    for the other writer; what happened: "committed" or the error's class and first line."""
    try:
        with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
            with connections[settings.CONSOLE_DB_ALIAS].cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '5s'")
            for label in labels:
                record(actor=None, action="secret.used", client=client, target_label=label)
                mine.set()
                if hold or label != labels[-1]:
                    theirs.wait(10)
        return "committed"
    except Exception as error:  # the outcome is the assertion
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    finally:
        connections[settings.CONSOLE_DB_ALIAS].close()


def _both(first, second) -> tuple[str, str]:
    outcomes = [None, None]

    def run(index, call):
        outcomes[index] = call()

    threads = [threading.Thread(target=run, args=(0, first)), threading.Thread(target=run, args=(1, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes[0], outcomes[1]


def test_writers_of_different_clients_do_not_wait_on_each_other_for_a_new_label(committed, make_client):
    """The second client's writer records a label the first one's open transaction has just added: it goes on at
    once (under 0008's unique index it waited for the first to end; found by the review)."""
    acme, globex = make_client("acme"), make_client("globex")
    label = "A label new to the trail"
    acme_holds, globex_done = threading.Event(), threading.Event()

    def second():
        assert acme_holds.wait(10)
        try:
            return _record_in_turn(globex, [label], mine=globex_done, theirs=threading.Event(), hold=False)
        finally:
            globex_done.set()

    acme_outcome, globex_outcome = _both(
        lambda: _record_in_turn(acme, [label], mine=acme_holds, theirs=globex_done, hold=True), second
    )
    assert (acme_outcome, globex_outcome) == ("committed", "committed")
    assert SearchLabel.objects.filter(label=label.upper()).count() in (1, 2)  # two writers at once may both add it


def test_two_writers_taking_two_new_labels_in_opposite_orders_both_commit(committed, make_client):
    """Acme records A then B while globex records B then A, each waiting for the other in between: no deadlock."""
    acme, globex = make_client("acme"), make_client("globex")
    acme_step, globex_step = threading.Event(), threading.Event()
    outcomes = _both(
        lambda: _record_in_turn(acme, ["Label A", "Label B"], mine=acme_step, theirs=globex_step, hold=False),
        lambda: _record_in_turn(globex, ["Label B", "Label A"], mine=globex_step, theirs=acme_step, hold=False),
    )
    assert outcomes == ("committed", "committed")


def test_a_label_that_stands_twice_is_searched_once(committed, client, staff, trail, small_pages):  # noqa: F811
    with connections["default"].cursor() as cursor:  # as the owner: what two writers racing on one label leave
        cursor.execute("INSERT INTO audit_searchlabel (field, label) VALUES ('target', 'ACME SLACK WEBHOOK')")
    assert SearchLabel.objects.filter(label="ACME SLACK WEBHOOK").count() == 2
    assert found(client, "slack") == expected("slack")
    labels = audit_admin.label_search(staff, "slack")
    assert len(labels.branches) == len(set(map(str, labels.branches)))


# --- Same results as icontains, by either plan ---------------------------------------------------


@db
@pytest.mark.parametrize("cap", [audit_admin.LABEL_BRANCH_CAP, 0], ids=["few labels: merged", "many labels: walk"])
def test_search_finds_exactly_what_icontains_finds(client, staff, trail, small_pages, monkeypatch, cap):  # noqa: F811, PLR0917
    monkeypatch.setattr(audit_admin, "LABEL_BRANCH_CAP", cap)
    assert any(expected(term) for term in TERMS) and any(len(expected(term)) > 2 for term in TERMS)
    for term in TERMS:
        assert found(client, term) == expected(term), term


@db
def test_both_plans_are_taken_and_cost_the_same_queries(client, staff, trail, small_pages, monkeypatch):  # noqa: F811
    url = reverse(CHANGELIST) + "?q=webhook"
    response, merged_sql = captured(client, url)
    assert any("UNION ALL" in sql for sql in merged_sql)
    deep = reverse(CHANGELIST) + older_link(response)
    _, deep_sql = captured(client, deep)
    monkeypatch.setattr(audit_admin, "LABEL_BRANCH_CAP", 1)  # "webhook" matches more labels than that: walk
    walked, walked_sql = captured(client, url)
    assert not any("UNION ALL" in sql for sql in walked_sql)
    assert [e.pk for e in events_on(walked)] == [e.pk for e in events_on(response)]
    assert len(merged_sql) == len(walked_sql) == len(deep_sql)
    for sql in merged_sql + walked_sql + deep_sql:
        assert not re.search(r"\bCOUNT\s*\(", sql, re.IGNORECASE), sql


@db
def test_a_merged_search_pages_back_and_forth(client, staff, trail, small_pages):  # noqa: F811
    pages = [client.get(reverse(CHANGELIST), {"q": "e"})]  # below three characters: exact matches only, none
    assert events_on(pages[0]) == []
    pages = [client.get(reverse(CHANGELIST), {"q": "ack"})]
    while older_link(pages[-1]):
        pages.append(get(client, older_link(pages[-1])))
    assert len(pages) >= 2
    back = get(client, pages[-1].context["cl"].newer_url)
    assert [e.pk for e in events_on(back)] == [e.pk for e in events_on(pages[-2])]


@db
def test_a_nul_byte_or_an_invalid_character_is_refused_clearly(client, staff, trail):  # noqa: F811
    # The middleware answers a NUL anywhere in a query string with a 400 that says so (config/middleware.py) …
    page = client.get(reverse(CHANGELIST), {"q": "ac\x00me"})
    assert page.status_code == 400 and "NUL character" in page.content.decode()
    # … and the search itself refuses what PostgreSQL text cannot hold, should it be reached another way.
    request = RequestFactory().get("/")
    request.user, request._messages = staff, CookieStorage(request)
    model_admin = admin.site._registry[AuditEvent]
    for term, why in (("ac\x00me", "NUL character"), ("\ud800x", "not valid Unicode")):
        events, _ = model_admin.get_search_results(request, AuditEvent.objects.all(), term)
        assert list(events) == [] and why in str(list(request._messages)[-1])
    assert audit_admin.unsearchable("acme") is None


@db
def test_a_scoped_user_finds_only_their_clients_events(client, trail):
    from django.contrib.auth.models import Permission, User

    from staff.services import create_staff_user, grant_client_access

    acme, _ = trail
    user = create_staff_user(actor=None, username="support", email="support@thepia.net", role="Support")
    grant_client_access(actor=None, user=user, client=acme)
    user = User.objects.get(pk=user.pk)
    user.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(user)
    for cap in (audit_admin.LABEL_BRANCH_CAP, 0):
        audit_admin.LABEL_BRANCH_CAP, saved = cap, audit_admin.LABEL_BRANCH_CAP
        try:
            shown = events_on(client.get(reverse(CHANGELIST), {"q": "webhook"}))
        finally:
            audit_admin.LABEL_BRANCH_CAP = saved
        assert shown and {e.client_code for e in shown} == {"acme"}


@db
def test_a_scoped_user_sees_more_than_n_where_staff_for_all_clients_see_the_estimate(client, staff, trail, small_pages):  # noqa: F811
    """The planner's estimate comes from every client's statistics: staff granted some clients get "more than N"
    (found by the review: a search for a common label showed another client's volume), and no EXPLAIN is run."""
    from django.contrib.auth.models import Permission, User

    from staff.services import create_staff_user, grant_client_access

    acme, _ = trail
    url = reverse(CHANGELIST) + "?q=acme"  # acme's code: all its events, more than a page of two
    response, sql = captured(client, url)  # `staff` sees every client
    assert "an estimate" in response.content.decode() and any(q.startswith("EXPLAIN") for q in sql)
    user = create_staff_user(actor=None, username="support", email="support@thepia.net", role="Support")
    grant_client_access(actor=None, user=user, client=acme)
    user = User.objects.get(pk=user.pk)
    user.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(user)
    response, sql = captured(client, url)
    page = response.content.decode()
    assert "more than 2 audit events" in page and "an estimate" not in page
    assert not any(q.startswith("EXPLAIN") for q in sql)


@db
def test_the_label_search_uses_the_trigram_index_and_each_branch_its_own(staff, trail):  # noqa: F811
    with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
        with connections[settings.CONSOLE_DB_ALIAS].cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
        plan = SearchLabel.objects.using(settings.CONSOLE_DB_ALIAS).filter(label__contains="WEBHOOK").explain()
        assert "audit_searchlabel_trgm" in plan, plan
        plans = []
        for term in ("webhook", "udito"):  # part of target labels; part of the staff user's name (actor label)
            search = audit_admin.label_search(staff, term)
            assert not search.walk and search.branches
            rows = audit_admin.merged_page(
                AuditEvent.objects.using(settings.CONSOLE_DB_ALIAS), search.branches, limit=51, ascending=False
            )
            plans.append(rows.explain())
    plan = "\n".join(plans)
    for index in ("auditevent_target_label_time", "auditevent_actor_label_time", "auditevent_target_id",
                  "auditevent_request"):  # fmt: skip
        assert index in plan, (index, plan)
    assert "Seq Scan on audit_auditevent" not in plan, plan
