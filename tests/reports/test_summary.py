"""The invitation summary (reports.models) against the live rows, after random sequences of real operations.

The summary is written by the invitations' triggers (reports/migrations/0001), never by Python: these
tests drive the services (issue, batch issue, redeem, revoke, resend, expire, cleanup with purge) and
compare, after every step, the summary with the live computation: seats with
`invitations.selectors.seats_used` for each client, the daily history with the invitations' own
`created_at`/`finished_at`/status plus the rows the cleanup purged (the history keeps them).
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, timedelta

import psycopg
import pytest
import time_machine
from django.utils import timezone

from clients.models import Client
from invitations import services
from invitations.models import Invitation
from invitations.selectors import seats_used
from invitations.services import InvitationRequest, Invitee
from reports.models import ClientSeats, InvitationDaily
from tests.invitations.test_lifecycle_rules import as_tenant

pytestmark = pytest.mark.usefixtures("committed")

KINDS = {"accepted": "redeemed", "revoked": "revoked", "expired": "expired"}


def contributions(rows) -> Counter:
    """(client id, UTC day, kind) → count, as the live rows count them (what the dashboard showed before)."""
    history: Counter = Counter()
    for client_id, created_at, status, finished_at in rows:
        history[(client_id, created_at.astimezone(UTC).date(), "issued")] += 1
        if status != "pending" and finished_at is not None:
            history[(client_id, finished_at.astimezone(UTC).date(), KINDS[status])] += 1
    return history


def live_rows() -> dict:
    return {
        row[0]: row[1:]
        for row in Invitation.objects.values_list("id", "client_id", "created_at", "status", "finished_at")
    }


def summary_history() -> Counter:
    history: Counter = Counter()
    for row in InvitationDaily.objects.values("client_id", "day", "issued", "redeemed", "revoked", "expired"):
        for kind in ("issued", "redeemed", "revoked", "expired"):
            history[(row["client_id"], row["day"], kind)] += row[kind]
    return +history  # zero counts dropped


def assert_summary_matches(purged: Counter) -> None:
    clients = list(Client.objects.all())
    seats = dict(ClientSeats.objects.values_list("client_id", "seats"))
    assert {c.pk: seats.get(c.pk, 0) for c in clients} == {c.pk: seats_used(c) for c in clients}
    assert summary_history() == +(contributions(live_rows().values()) + purged)


class Walk:
    """Random writes through the services, remembering what the comparison needs (purged rows, tokens, invitees)."""

    def __init__(self, world, issue, seed: int):
        self.acme, self.globex, _ = world
        self.issue = issue
        self.rng = random.Random(seed)
        self.purged: Counter = Counter()
        self.tokens: dict = {}  # invitation id → its current token
        self.invitees: dict = {}  # invitation id → invitee (needed to resend)
        self.people = iter(range(10_000))

    def someone(self) -> Invitee:
        n = next(self.people)
        return Invitee(f"Person {n}", f"person{n}@acme.example")

    def client(self):
        return self.rng.choice([self.acme, self.globex])

    @staticmethod
    def with_status(status):
        return list(Invitation.objects.filter(status=status).order_by("code"))

    def op_issue(self):
        invitee, client = self.someone(), self.client()
        options = {"max_uses": self.rng.choice([1, 1, 2, 3])}
        if self.rng.random() < 0.4:  # issued days ago, lapsed since: the cleanup will expire it
            with time_machine.travel(timezone.now() - timedelta(days=self.rng.randint(2, 20)), tick=False):
                invitation, token = self.issue(invitee, client=client, expires_in=timedelta(hours=1), **options)
        else:
            invitation, token = self.issue(invitee, client=client, expires_in=timedelta(days=7), **options)
        self.tokens[invitation.pk], self.invitees[invitation.pk] = token, invitee

    def op_batch(self):
        requests = [InvitationRequest(line, self.someone(), "onboarding") for line in range(1, self.rng.randint(2, 6))]
        result = services.issue_invitations(actor=None, client=self.client(), requests=requests)
        assert not result.errors
        for row, request in zip(result.issued, requests, strict=True):
            self.tokens[row.invitation.pk], self.invitees[row.invitation.pk] = row.token, request.invitee

    def op_redeem(self):
        now = timezone.now()
        if candidates := [i for i in self.with_status("pending") if i.expires_at > now]:
            services.redeem_invitation(actor=None, token=self.tokens[self.rng.choice(candidates).pk])

    def op_revoke(self):
        if candidates := self.with_status("pending"):
            services.revoke_invitation(actor=None, invitation=self.rng.choice(candidates), reason="random walk")

    def op_expire(self):
        services.expire_invitations(actor=None)

    def op_resend(self):
        if candidates := self.with_status("expired"):
            invitation = self.rng.choice(candidates)
            self.tokens[invitation.pk] = services.resend_invitation(
                actor=None, invitation=invitation, invitee=self.invitees[invitation.pk], expires_in=timedelta(days=3)
            )

    def op_purge(self):
        services.expire_invitations(actor=None)  # the cleanup's own expiry then finds nothing new
        before = live_rows()
        services.cleanup_invitations(actor=None, retention_days=0)
        after = live_rows()
        gone = [row for pk, row in before.items() if pk not in after]
        assert all(status != "pending" for _, _, status, _ in gone)
        self.purged.update(contributions(gone))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_summary_equals_the_live_computation_after_random_operations(world, issue, seed):
    walk = Walk(world, issue, seed)
    operations = [walk.op_issue] * 5 + [walk.op_batch] * 2 + [walk.op_redeem] * 4 + [walk.op_revoke] * 2
    operations += [walk.op_expire, walk.op_resend, walk.op_purge]
    # 45 random draws, made up front (the operations' own draws then cannot change which come next), then every
    # kind of write the draws missed (in the list's order: expire before resend), then a purge: each seed walks
    # every kind of write.
    draws = [walk.rng.choice(operations) for _ in range(45)]
    missed = [operation for operation in dict.fromkeys(operations) if operation not in draws]
    for operation in [*draws, *missed, walk.op_purge]:
        operation()
        assert_summary_matches(walk.purged)
    assert sum(walk.purged.values()) > 0  # the history kept rows the live table no longer has


def test_a_purge_gives_seats_back_and_keeps_the_history(world, issue):
    acme, _, _ = world
    invitation, token = issue(client=acme, max_uses=2)
    assert ClientSeats.objects.get(client=acme).seats == 2
    services.redeem_invitation(actor=None, token=token)
    services.revoke_invitation(actor=None, invitation=invitation, reason="left")
    assert ClientSeats.objects.get(client=acme).seats == 1  # revoked: the use made still holds a seat
    services.cleanup_invitations(actor=None, retention_days=0)
    assert not Invitation.objects.filter(pk=invitation.pk).exists()
    assert ClientSeats.objects.get(client=acme).seats == 0 == seats_used(acme)
    day = InvitationDaily.objects.get(client=acme)
    assert (day.issued, day.revoked) == (1, 1)


def test_a_redemption_by_the_tenant_role_moves_the_summary_it_cannot_read_or_write(world, issue, app_connection):
    acme, _, _ = world
    invitation, _ = issue(client=acme)
    as_tenant(app_connection, acme)
    app_connection.execute(
        "UPDATE invitations_invitation SET used_count = 1, status = 'accepted' WHERE id = %s", [invitation.pk]
    )
    app_connection.commit()
    today = InvitationDaily.objects.get(client=acme, day=timezone.now().astimezone(UTC).date())
    assert (today.issued, today.redeemed) == (1, 1)
    assert ClientSeats.objects.get(client=acme).seats == 1 == seats_used(acme)
    for statement in (
        "SELECT * FROM reports_clientseats",
        "SELECT * FROM reports_invitationdaily",
        f"UPDATE reports_clientseats SET seats = 0 WHERE client_id = '{acme.pk}'",
        f"INSERT INTO reports_invitationdaily (client_id, day, issued, redeemed, revoked, expired)"
        f" VALUES ('{acme.pk}', '2020-01-01', 9, 0, 0, 0)",
    ):
        as_tenant(app_connection, acme)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_connection.execute(statement)
        app_connection.rollback()
