"""Monthly analytics: exact figures after known actions, the two commands, month validation, CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from invitations import services
from invitations.models import Invitation
from invitations.services import Invitee
from reports.analytics import client_month_figures, every_client_month, parse_month, previous_month
from tests.api.conftest import Api
from tests.invitations.conftest import ADA, GRACE

pytestmark = pytest.mark.usefixtures("committed")

ALAN = Invitee("Alan Turing", "alan.turing@acme.example")
EDSGER = Invitee("Edsger Dijkstra", "edsger.dijkstra@acme.example")
BARBARA = Invitee("Barbara Liskov", "barbara.liskov@acme.example")


@pytest.fixture
def month_of_acme(world, issue, make_key):
    """This month: five issued early in the month (two redeemed now, one revoked now, one lapsed after an hour,
    one pending); last month: one issued that lapsed. acme's key made two good requests and one 404."""
    now = timezone.now()
    this_month = datetime(now.year, now.month, 1, tzinfo=UTC)
    early = max(this_month + timedelta(minutes=1), now - timedelta(days=29))  # tokens still valid now
    with time_machine.travel(previous_month(this_month.date()).replace(day=2)):
        issue(Invitee("Old Timer", "old.timer@acme.example"), expires_in=timedelta(hours=1))
    with time_machine.travel(early):
        _, ada = issue(ADA, expires_in=timedelta(days=30))
        _, grace = issue(GRACE, expires_in=timedelta(days=30))
        revoked, _ = issue(ALAN, expires_in=timedelta(days=30))
        issue(EDSGER, expires_in=timedelta(hours=1))
    with time_machine.travel(early + timedelta(minutes=30)):
        issue(BARBARA, expires_in=timedelta(days=30))
    services.redeem_invitation(actor=None, token=ada)
    services.redeem_invitation(actor=None, token=grace)
    services.revoke_invitation(actor=None, invitation=revoked, reason="changed their mind")
    api = Api(make_key(world[0]))
    api.get("/client")
    api.get("/client")
    api.get("/applications/missing")
    # Figures as of two hours after the early issues: the one-hour invitation has lapsed by then, even when the
    # test runs in a month's first hour.
    return world, max(timezone.now(), early + timedelta(hours=2))


def test_a_clients_month_in_figures(month_of_acme):
    (acme, globex, _), now = month_of_acme
    figures = client_month_figures(acme, now.date(), now=now)
    data = figures.as_dict()
    assert data["invitations"] | {"median_hours_to_redeem": None} == {
        "issued": 5, "redeemed": 2, "expired": 1, "revoked": 1, "issued_then_redeemed": 2,
        "redemption_rate": 0.4, "median_hours_to_redeem": None,
    }  # fmt: skip
    durations = [i.accepted_at - i.created_at for i in Invitation.objects.filter(status="accepted")]
    expected = sum(durations, timedelta()) / 2  # the median of two is their mean
    assert abs(figures.invitations.median_time_to_redeem - expected) < timedelta(milliseconds=1)
    assert data["by_application"]["onboarding"]["issued"] == 5
    # Seats now: two redeemed, one pending, two lapsed that the cleanup has not marked yet.
    assert data["seats"] == {"used": 5, "limit": acme.tier.max_users}
    assert data["api"]["requests"] == 3 and data["api"]["by_status_class"] == {"2xx": 2, "4xx": 1, "5xx": 0}
    assert list(data["api"]["by_key"].values()) == [3] and data["complete"]

    last = client_month_figures(acme, previous_month(figures.month), now=now).as_dict()
    assert last["invitations"]["issued"] == 1 and last["invitations"]["expired"] == 1
    assert last["invitations"]["redemption_rate"] == 0.0 and last["api"]["requests"] == 0

    other = client_month_figures(globex, now.date(), now=now).as_dict()
    assert other["invitations"]["issued"] == 0 and other["invitations"]["redemption_rate"] is None
    assert other["by_application"] == {"onboarding": other["by_application"]["onboarding"]}


def test_client_analytics_command(manage, month_of_acme):
    month = f"{timezone.now():%Y-%m}"
    run = manage("client_analytics", "acme", "--month", month, "--json")
    assert run.code == 0, run.err
    assert run.json["ok"] and run.json["client"] == "acme" and run.json["invitations"]["issued"] == 5
    text = manage("client_analytics", "acme", "--month", month)
    assert text.code == 0 and "5 issued, 2 redeemed" in text.out and "onboarding:" in text.out
    assert "redemption rate 40.0%" in text.out and "API: 3 request(s)" in text.out
    missing = manage("client_analytics", "nobody", "--month", month, "--json")
    assert missing.code == 1 and missing.json["error"]["code"] == "client_not_found"


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-11", "2026-11-01", "november", "1999-12", "9999-01", ""])
def test_a_bad_month_is_a_usage_error(manage, month_of_acme, month):
    for command in (("client_analytics", "acme"), ("usage_report",)):
        run = manage(*command, "--month", month, "--json")
        assert run.code == 2 and run.json["error"]["code"] == "usage"
        message = run.json["error"]["message"]
        assert message.startswith("argument --month:") and ("YYYY-MM" in message or "outside" in message)
    with pytest.raises(Exception, match="YYYY-MM"):
        parse_month("2026-13")


def test_usage_report_one_line_per_client(manage, month_of_acme, make_client):
    make_client("initech", tier="free")
    month = f"{timezone.now():%Y-%m}"
    text = manage("usage_report", "--month", month)
    lines = text.out.strip().splitlines()
    assert text.code == 0 and [line.split()[0] for line in lines[:-1]] == ["acme", "globex", "initech"]
    assert lines[-1] == f"3 client(s), {month}"

    as_csv = manage("usage_report", "--month", month, "--csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert as_csv.code == 0 and [row["client"] for row in rows] == ["acme", "globex", "initech"]
    assert rows[0]["issued"] == "5" and rows[0]["api_requests"] == "3" and rows[2]["tier"] == "free"
    assert len({len(row) for row in rows}) == 1 and None not in rows[0]

    as_json = manage("usage_report", "--month", month, "--json")
    assert as_json.json["count"] == 3 and as_json.json["clients"][0]["redemption_rate"] == 0.4
    assert manage("usage_report", "--month", month, "--csv", "--json").code == 2


def test_usage_report_streams_in_batches(month_of_acme, make_client, django_assert_max_num_queries):
    for n in range(5):
        make_client(f"client-{n}", tier="free")
    month = parse_month(f"{timezone.now():%Y-%m}")
    # Seven clients in batches of two: four batches of at most seven queries, then the empty read.
    with django_assert_max_num_queries(4 * 7 + 1):
        codes = [figures.client.code for figures in every_client_month(month, batch=2)]
    assert codes == sorted(codes) and len(codes) == 7
