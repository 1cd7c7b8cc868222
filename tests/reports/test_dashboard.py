"""The dashboard on the admin index: exact figures after known actions, scoping, a constant query count, charts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clients.models import Client
from invitations import services
from invitations.services import Invitee
from reports.dashboard import WEEKS, dashboard, week_start
from staff.services import grant_client_access
from tests.invitations.conftest import ADA, GRACE
from vault.services import set_secret

pytestmark = pytest.mark.usefixtures("committed")

ALAN = Invitee("Alan Turing", "alan.turing@acme.example")
EDSGER = Invitee("Edsger Dijkstra", "edsger.dijkstra@acme.example")
BARBARA = Invitee("Barbara Liskov", "barbara.liskov@acme.example")
KATHERINE = Invitee("Katherine Johnson", "katherine.johnson@acme.example")


def series(board, kind: str) -> list[int]:
    return [getattr(week, kind) for week in board.weeks]


@pytest.fixture
def superuser(committed):
    return User.objects.create_superuser("boss", "boss@thepia.net", "not-used")


@pytest.fixture
def history(world, issue):
    """Known actions at known times: two weeks ago three issued (one lapses the same day), last week one more
    that lapses; this week one redeemed, one revoked (the database stamps when: its own clock), one issued
    expiring tomorrow and one next week."""
    now = timezone.now()
    two_weeks_ago = week_start(now) - timedelta(weeks=2) + timedelta(days=1, hours=10)
    with time_machine.travel(two_weeks_ago):
        _, token = issue(ADA, expires_in=timedelta(days=30))
        revoked, _ = issue(GRACE, expires_in=timedelta(days=30))
        issue(ALAN, expires_in=timedelta(hours=1))
    with time_machine.travel(two_weeks_ago + timedelta(weeks=1)):
        issue(EDSGER, expires_in=timedelta(hours=1))
    services.redeem_invitation(actor=None, token=token)
    services.revoke_invitation(actor=None, invitation=revoked, reason="left the company")
    issue(BARBARA, expires_in=timedelta(hours=24))
    issue(KATHERINE, expires_in=timedelta(days=7))
    return world


def test_weekly_figures_are_exact_after_known_actions(superuser, history):
    board = dashboard(superuser)
    assert len(board.weeks) == WEEKS and board.weeks[-1].start == week_start(board.now)
    zeros = [0] * (WEEKS - 3)
    assert series(board, "issued") == [*zeros, 3, 1, 2]
    assert series(board, "redeemed") == [*zeros, 0, 0, 1]
    assert series(board, "revoked") == [*zeros, 0, 0, 1]
    # Not yet marked by the cleanup: counted in the week they lapsed.
    assert series(board, "expired") == [*zeros, 1, 1, 0]

    services.cleanup_invitations(actor=None)
    after = dashboard(superuser)
    # Marked by the cleanup now: counted in the week it marked them, and only once.
    assert series(after, "expired") == [*zeros, 0, 0, 2]
    assert series(after, "issued") == series(board, "issued")


def test_attention_figures_are_exact(superuser, history, make_client):
    acme, globex, _ = history
    soon = timezone.now() + timedelta(days=10)
    set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="x", expires_at=soon)
    set_secret(actor=None, client=acme, provider="stripe", secret_type="api_key", value="y",
               expires_at=timezone.now() + timedelta(days=60))  # fmt: skip
    set_secret(actor=None, client=globex, provider="slack", secret_type="api_key", value="z", expires_at=soon,
               is_active=False)  # fmt: skip
    make_client("initech", tier="free")

    board = dashboard(superuser)
    assert board.expiring_invitations == 1
    assert [i.application.app_code for i in board.expiring_invitations_listed] == ["onboarding"]
    assert board.expiring_secrets == 1 and [s.name for s in board.expiring_secrets_listed] == ["slack-api_key"]
    tiers = {row.tier: row.by_status for row in board.clients_by_tier}
    assert tiers["Pro"] == {"active": 2, "suspended": 0, "deactivated": 0} and tiers["Free"]["active"] == 1
    assert board.clients == 3 and board.clients_by_status["active"] == 3
    # Seats: two pending one-use invitations not yet expired by the cleanup, two lapsed, one redeemed.
    assert [(use.client.code, use.seats, use.limit) for use in board.nearest_seat_limit] == [
        ("acme", 5, acme.tier.max_users)
    ]
    assert board.cleanup.last_run is None and board.cleanup.overdue

    services.cleanup_invitations(actor=None)
    board = dashboard(superuser)
    assert board.nearest_seat_limit[0].seats == 3  # the lapsed ones no longer hold a seat
    assert board.cleanup.last_run is not None and not board.cleanup.overdue
    later = dashboard(superuser, now=timezone.now() + timedelta(hours=3))
    assert later.cleanup.overdue


def test_failed_sign_ins_and_lockouts_of_the_last_day(client, superuser, settings):
    settings.AXES_FAILURE_LIMIT = 3
    User.objects.create_user("someone", password="Corr3ct-horse-battery", is_staff=True)
    for _ in range(2):
        client.post(reverse("admin:login"), {"username": "someone", "password": "wrong"})
    board = dashboard(superuser)
    assert (board.failed_sign_ins, board.lockouts) == (2, 0)
    client.post(reverse("admin:login"), {"username": "someone", "password": "wrong"})
    board = dashboard(superuser)
    assert board.failed_sign_ins == 3 and board.lockouts == 1
    assert dashboard(superuser, now=timezone.now() + timedelta(hours=25)).failed_sign_ins == 0


def test_a_scoped_user_counts_only_their_clients(staff_user, history, issue):
    _, globex, _ = history
    issue(ADA, client=globex)
    manager = staff_user("manager", "Client manager", [globex])
    board = dashboard(manager)
    assert board.clients == 1 and [row.tier for row in board.clients_by_tier] == ["Pro"]
    assert series(board, "issued")[-1] == 1 and sum(series(board, "issued")) == 1
    assert sum(series(board, "redeemed")) == sum(series(board, "revoked")) == 0
    assert [use.client.code for use in board.nearest_seat_limit] == ["globex"]
    assert board.expiring_invitations == 0
    # Platform-wide figures (staff sign-ins, the cleanup schedule) are not theirs to see.
    assert board.failed_sign_ins is None and board.cleanup is None

    nobody = staff_user("newcomer", "Client manager")
    empty = dashboard(nobody)
    assert empty.clients == 0 and sum(series(empty, "issued")) == 0 and not empty.nearest_seat_limit


def index_queries(browser) -> tuple[int, str]:
    browser.get(reverse("admin:index"))  # warm the per-process caches (content types, permissions)
    with CaptureQueriesContext(connections[settings.CONSOLE_DB_ALIAS]) as queries:
        response = browser.get(reverse("admin:index"))
    assert response.status_code == 200
    return len(queries), response.content.decode()


@pytest.mark.usefixtures("superuser")
def test_the_index_costs_the_same_queries_whatever_the_data(client, staff_user, world, issue, make_client):
    superuser = User.objects.get(username="boss")
    client.force_login(superuser)
    acme, globex, _ = world
    issue(ADA)
    few, _ = index_queries(client)
    for n in range(6):
        issue(Invitee(f"Person {n}", f"person{n}@acme.example"), client=acme if n % 2 else globex)
    for code in ("initech", "umbrella", "hooli"):
        make_client(code)
    for client_ in (acme, globex):
        set_secret(actor=None, client=client_, provider="slack", secret_type="api_key", value="v",
                   expires_at=timezone.now() + timedelta(days=3))  # fmt: skip
    full, page = index_queries(client)
    assert full == few
    assert page.count("<svg") >= 3 and "acme" in page

    manager = staff_user("manager", "Client manager", [acme])
    client.force_login(manager)
    one_client, _ = index_queries(client)
    grant_client_access(actor=None, user=manager, client=globex)
    grant_client_access(actor=None, user=manager, client=Client.objects.get(code="hooli"))
    three_clients, page = index_queries(client)
    assert three_clients == one_client and "initech" not in page and "cleanup_invitations" not in page


def test_the_figures_take_ten_queries_nine_for_a_scoped_user(superuser, staff_user, history):
    acme, _, _ = history
    manager = staff_user("manager", "Client manager", [acme])
    for user, expected in ((superuser, 10), (manager, 9)):
        dashboard(user)  # the user's permissions, cached on the object as on a request's user
        with CaptureQueriesContext(connections[settings.CONSOLE_DB_ALIAS]) as queries:
            dashboard(user)
        assert len(queries) == expected, [query["sql"] for query in queries]


def test_the_charts_are_accessible_svg_and_fetch_nothing(client, superuser, history):
    client.force_login(superuser)
    page = client.get(reverse("admin:index")).content.decode()
    dashboard_html = page[page.index('id="dashboard"') : page.index('id="content-related"')]
    charts = re.findall(r"<svg .*?</svg>", dashboard_html, re.S)
    assert len(charts) == 3
    for chart in charts:
        assert 'role="img"' in chart and "<title" in chart and "<desc" in chart
    assert "Invitations per week" in charts[0] and "<title>" in charts[0]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", dashboard_html)
    assert "<script" not in dashboard_html
    # The stock list of models is still there, below the dashboard.
    assert page.index('id="dashboard"') < page.index('class="app-clients module')
