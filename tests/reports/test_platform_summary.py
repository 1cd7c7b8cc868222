"""The platform-wide summaries (reports/migrations/0002) and the dashboard that reads them, against a direct
computation from the live rows after random sequences of real operations: clients created, deactivated,
reactivated, erased and moved between tiers; invitations issued, redeemed, revoked, expired and purged.

A platform-wide user's dashboard reads the kept summaries (`ClientTally`, `PlatformDaily`, each tier's
fullest `ClientSeats`); a scoped user's reads the per-client rows of their clients. Both must show
exactly what a computation over the live clients and invitations gives.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import time_machine
from django.contrib.auth.models import User
from django.utils import timezone

from clients import services as client_services
from clients.models import Client
from config.errors import InvalidInput, Refused
from invitations import services
from invitations.models import Invitation
from invitations.selectors import seats_used
from invitations.services import Invitee
from reports.dashboard import NEAREST_LIMIT, WEEKS, dashboard, week_start
from reports.models import ClientSeats, ClientTally, InvitationDaily, PlatformDaily
from tests.conftest import connect_as
from tests.invitations.test_lifecycle_rules import as_tenant

pytestmark = pytest.mark.usefixtures("committed")

KINDS = ("issued", "redeemed", "revoked", "expired")
FINISHED = {"accepted": "redeemed", "revoked": "revoked", "expired": "expired"}


def direct_weeks(clients, now: datetime) -> list[tuple]:
    """The weekly series from the live invitations of `clients` (no purge in these walks)."""
    first = week_start(now) - timedelta(weeks=WEEKS - 1)
    counts = {first + timedelta(weeks=i): Counter() for i in range(WEEKS)}

    def add(moment, kind):
        week = week_start(moment)
        if week in counts and moment.astimezone(UTC).date() <= now.astimezone(UTC).date():
            counts[week][kind] += 1

    for invitation in Invitation.objects.filter(client__in=clients):
        add(invitation.created_at, "issued")
        if invitation.status != "pending" and invitation.finished_at is not None:
            add(invitation.finished_at, FINISHED[invitation.status])
        elif invitation.status == "pending" and first <= invitation.expires_at <= now:
            add(invitation.expires_at, "expired")
    return [(start, *(counts[start][kind] for kind in KINDS)) for start in counts]


def direct_nearest(clients) -> list[tuple]:
    uses = []
    for client in clients:
        seats = seats_used(client)
        if seats > 0:
            limit = client.tier.max_users
            share = seats / limit if limit else float("inf")
            uses.append((-share, str(client.pk), client.code, seats, limit))
    return [(code, seats, limit) for _, _, code, seats, limit in sorted(uses)[:NEAREST_LIMIT]]


def direct_tiers(clients) -> dict:
    tiers: dict = {}
    for client in clients:
        tiers.setdefault(client.tier.name, Counter())[client.status] += 1
    return {tier: +by_status for tier, by_status in tiers.items()}


def assert_dashboard_is_exact(user, clients) -> None:
    clients = list(Client.objects.filter(pk__in=[c.pk for c in clients]).select_related("tier"))
    board = dashboard(user)
    assert {row.tier: +Counter(row.by_status) for row in board.clients_by_tier} == direct_tiers(clients)
    assert [(w.start, w.issued, w.redeemed, w.revoked, w.expired) for w in board.weeks] == direct_weeks(
        clients, board.now
    )
    assert [(u.client.code, u.seats, u.limit) for u in board.nearest_seat_limit] == direct_nearest(clients)


def assert_summaries_match() -> None:
    """The platform rows are the per-client rows summed; the tally counts the clients; seats carry the tier."""
    per_day: Counter = Counter()
    for row in InvitationDaily.objects.values("day", *KINDS):
        for kind in KINDS:
            per_day[(row["day"], kind)] += row[kind]
    platform: Counter = Counter()
    for row in PlatformDaily.objects.values("day", *KINDS):
        for kind in KINDS:
            platform[(row["day"], kind)] += row[kind]
    assert +platform == +per_day
    tally = Counter({(t, s): n for t, s, n in ClientTally.objects.values_list("tier_id", "status", "clients")})
    assert +tally == Counter(Client.objects.values_list("tier_id", "status"))
    assert not ClientTally.objects.filter(clients__lt=0).exists()
    tiers = dict(Client.objects.values_list("pk", "tier_id"))
    assert dict(ClientSeats.objects.values_list("client_id", "tier_id")) == {
        pk: tiers[pk] for pk in ClientSeats.objects.values_list("client_id", flat=True)
    }


class Walk:
    def __init__(self, world, seed: int):
        acme, globex, apps = world
        self.rng = random.Random(seed)
        self.apps = dict(apps)  # client code → application
        self.clients = [acme, globex]
        self.tokens: dict = {}
        self.people = iter(range(100_000))
        self.codes = iter(range(1000))

    def active(self):
        return list(Client.objects.filter(pk__in=[c.pk for c in self.clients], status="active"))

    def op_create(self, tier: str | None = None):
        code = f"client{next(self.codes)}"
        tier = tier or self.rng.choice(["free", "free", "pro", "enterprise"])
        client = client_services.create_client(
            actor=None, code=code, legal_name=code.title(), domain=f"{code}.thepia.net", region="EU", tier=tier
        )
        self.apps[code] = client_services.configure_application(actor=None, client=client, app_code="onboarding")
        self.clients.append(client)
        self.op_issue(client)

    def op_issue(self, client=None):
        if not (candidates := self.active()):
            return
        client = client or self.rng.choice(candidates)
        n = next(self.people)
        options = {
            "actor": None,
            "client": client,
            "application": self.apps[client.code],
            "invitee": Invitee(f"Person {n}", f"person{n}@example.com"),
        }
        if self.rng.random() < 0.3:  # issued days ago, lapsed since
            with time_machine.travel(timezone.now() - timedelta(days=self.rng.randint(2, 40)), tick=False):
                invitation, token = services.issue_invitation(**options, expires_in=timedelta(hours=1))
        else:
            invitation, token = services.issue_invitation(**options, expires_in=timedelta(days=7))
        self.tokens[invitation.pk] = token

    def pending(self):
        active = [c.pk for c in self.active()]
        return list(Invitation.objects.filter(status="pending", client__in=active).order_by("code"))

    def op_redeem(self):
        now = timezone.now()
        if candidates := [i for i in self.pending() if i.expires_at > now]:
            services.redeem_invitation(actor=None, token=self.tokens[self.rng.choice(candidates).pk])

    def op_revoke(self):
        if candidates := self.pending():
            services.revoke_invitation(actor=None, invitation=self.rng.choice(candidates), reason="random walk")

    def op_expire(self):
        services.expire_invitations(actor=None)

    def op_tier(self):
        client = self.rng.choice(self.clients)
        tier = self.rng.choice(["free", "pro", "enterprise"])
        with contextlib.suppress(InvalidInput, Refused):  # a tier its usage does not fit: refused, nothing changed
            client_services.update_client(actor=None, client=client, tier=tier)

    def op_status(self):
        client = Client.objects.get(pk=self.rng.choice(self.clients).pk)
        try:
            if client.status == "active":
                client_services.deactivate_client(actor=None, client=client, reason="walk")
            else:
                client_services.reactivate_client(actor=None, client=client, reason="walk")
        except Refused:
            pass  # an erased client stays deactivated

    def op_erase(self):
        client = self.rng.choice(self.clients[2:] or self.clients)
        client_services.erase_client(actor=None, client=client, confirm=client.code)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_dashboard_equals_a_direct_computation_for_superuser_and_scoped_staff(world, staff_user, seed):
    superuser = User.objects.create_superuser("boss", "boss@thepia.net", "not-used")
    walk = Walk(world, seed)
    for _ in range(14):  # more clients in a tier than the seats chart lists: each tier's top ten matters
        walk.op_create("free")
    operations = [walk.op_issue] * 8 + [walk.op_redeem] * 3 + [walk.op_revoke, walk.op_expire, walk.op_create]
    operations += [walk.op_tier, walk.op_tier, walk.op_status, walk.op_erase]
    done = Counter()
    for step in range(60):
        operation = walk.rng.choice(operations)
        operation()
        done[operation.__name__] += 1
        assert_summaries_match()
        if step % 10 == 9:
            assert_dashboard_is_exact(superuser, Client.objects.all())
    assert set(done) == {operation.__name__ for operation in operations}
    assert_dashboard_is_exact(superuser, Client.objects.all())
    assert len(dashboard(superuser).nearest_seat_limit) == NEAREST_LIMIT
    granted = walk.rng.sample(walk.clients, 5)
    manager = staff_user("manager", "Client manager", granted)
    assert_dashboard_is_exact(manager, granted)
    assert dashboard(manager).clients == 5


def test_a_purge_keeps_the_platform_history_and_the_tier_moves_with_the_client(world, issue):
    acme, globex, _ = world
    invitation, token = issue(client=acme, max_uses=2)
    services.redeem_invitation(actor=None, token=token)
    services.revoke_invitation(actor=None, invitation=invitation, reason="left")
    services.cleanup_invitations(actor=None, retention_days=0)
    assert not Invitation.objects.filter(pk=invitation.pk).exists()
    today = PlatformDaily.objects.get(day=timezone.now().astimezone(UTC).date())
    assert (today.issued, today.redeemed, today.revoked) == (1, 0, 1)
    assert_summaries_match()

    issue(client=globex)
    client_services.update_client(actor=None, client=globex, tier="enterprise")
    assert ClientSeats.objects.get(client=globex).tier_id == "enterprise"
    assert ClientTally.objects.get(tier_id="pro", status="active").clients == 1
    assert ClientTally.objects.get(tier_id="enterprise", status="active").clients == 1
    client_services.update_client(actor=None, client=globex, legal_name="Globex Corporation")  # no move
    assert_summaries_match()


def test_the_tenant_role_cannot_read_or_write_the_platform_summaries(world, issue, app_connection):
    acme, _, _ = world
    issue(client=acme)
    for statement in (
        "SELECT * FROM reports_platformdaily",
        "SELECT * FROM reports_clienttally",
        "INSERT INTO reports_platformdaily (day, shard, issued, redeemed, revoked, expired)"
        " VALUES ('2020-01-01', 0, 9, 0, 0, 0)",
        "UPDATE reports_clienttally SET clients = 0",
        "SELECT public.client_tally()",
    ):
        as_tenant(app_connection, acme)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_connection.execute(statement)
        app_connection.rollback()


def test_the_console_role_may_only_read_the_platform_summaries(world, issue):
    issue()
    with connect_as("console") as connection:
        assert connection.execute("SELECT count(*) FROM reports_platformdaily").fetchone()[0] > 0
        for statement in ("UPDATE reports_platformdaily SET issued = 0", "DELETE FROM reports_clienttally"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
            connection.rollback()
