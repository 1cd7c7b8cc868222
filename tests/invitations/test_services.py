"""Invitation lifecycle on committed data: concurrency, seats, wrong client, no personal data at rest, cleanup."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import psycopg
import pytest
import time_machine
from django.conf import settings
from django.db import connections
from django.utils import timezone
from psycopg import sql

from audit.models import AuditEvent
from clients.locks import single_run
from clients.tenancy import tenant_context
from config.errors import Conflict, InvalidInput, Refused
from invitations import services
from invitations.models import Invitation
from invitations.tokens import InvitationRejected
from tests.conftest import connect_as, connect_as_superuser
from tests.invitations.conftest import ADA, GRACE

committed = pytest.mark.usefixtures("committed")
db = pytest.mark.django_db(databases="__all__")


def run_in_threads(count: int, work) -> list:
    """`work()` in `count` threads released together, each on its own database connections."""
    barrier, results = threading.Barrier(count), []

    def worker():
        barrier.wait()
        try:
            results.append(("ok", work()))
        except Exception as error:
            results.append(("error", error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@committed
def test_of_many_concurrent_redemptions_of_a_single_use_token_exactly_one_wins(issue):
    _, token = issue()
    results = run_in_threads(8, lambda: services.redeem_invitation(actor=None, token=token).invitee["name"])
    assert sorted(kind for kind, _ in results) == ["error"] * 7 + ["ok"]
    assert {error.code for kind, error in results if kind == "error"} == {"already_used"}
    invitation = Invitation.objects.get()
    assert (invitation.used_count, invitation.status) == (1, "accepted")


@committed
def test_a_multi_use_link_is_redeemed_exactly_max_uses_times(issue):
    _, token = issue(max_uses=3)
    results = run_in_threads(7, lambda: services.redeem_invitation(actor=None, token=token))
    assert [kind for kind, _ in results].count("ok") == 3
    invitation = Invitation.objects.get()
    assert (invitation.used_count, invitation.status) == (3, "accepted")
    assert AuditEvent.objects.filter(action="invitation.redeemed").count() == 3


@committed
def test_concurrent_issues_cannot_overshoot_the_seat_limit(issue, world):
    acme = world[0]
    assert acme.tier.max_users == 1000
    issue(max_uses=995)
    emails = iter(f"person{n}@acme.example" for n in range(10))
    lock = threading.Lock()

    def issue_one():
        with lock:
            email = next(emails)
        return issue(services.Invitee("Some One", email), max_uses=1)

    results = run_in_threads(8, issue_one)
    assert [kind for kind, _ in results].count("ok") == 5
    assert {error.code for kind, error in results if kind == "error"} == {"seat_limit"}
    assert Invitation.objects.count() == 6


@committed
def test_concurrent_batches_and_single_issues_share_the_seats_exactly(issue, world):
    # The seats are read from the trigger-kept counter by the statement after the lock (invitation_issue_context):
    # every issue that held the lock before is counted, so no mix of batches and single issues overshoots.
    from invitations.selectors import seats_used
    from reports.models import ClientSeats

    acme = world[0]
    issue(max_uses=990)  # 10 seats free
    emails = iter(f"person{n}@acme.example" for n in range(100))
    lock = threading.Lock()

    def work(kind):
        with lock:
            addresses = [next(emails) for _ in range(3)]
        if kind == "single":
            issue(services.Invitee("Some One", addresses[0]))
            return 1
        requests = [services.InvitationRequest(n + 2, services.Invitee("Some One", email), "onboarding")
                    for n, email in enumerate(addresses)]  # fmt: skip
        result = services.issue_invitations(actor=None, client=acme, requests=requests)
        if result.batch_error:
            raise Refused(result.batch_error.reason, code="seat_limit")
        return len(result.issued)

    kinds = iter(["single", "batch"] * 4)
    results = run_in_threads(8, lambda: work(next(kinds)))
    assert {error.code for kind, error in results if kind == "error"} <= {"seat_limit"}
    issued = sum(value for kind, value in results if kind == "ok")
    held = seats_used(acme)
    assert held == 990 + issued == ClientSeats.objects.get(client=acme).seats
    assert held <= 1000
    # Nobody was refused while there was room: a refused single leaves no seat, a refused batch fewer than it needed.
    for error in (error for kind, error in results if kind == "error"):
        assert 1000 - held < (1 if "this invitation needs" in error.message else 3), error.message


@committed
def test_a_redemption_inside_another_clients_context_is_refused(issue, world):
    _, globex, _ = world
    _, token = issue()
    with tenant_context(globex), pytest.raises(InvitationRejected) as caught:
        services.redeem_invitation(actor=None, token=token)
    assert caught.value.code == "wrong_client"
    assert Invitation.objects.get().used_count == 0


@committed
def test_inside_its_own_clients_context_redemption_runs_as_the_tenant_role(issue, world):
    acme = world[0]
    _, token = issue()
    with tenant_context(acme):
        assert services.redeem_invitation(actor=None, token=token).invitee["company_email"] == ADA.company_email
        assert connections[settings.TENANT_DB_ALIAS].cursor().connection.info.user == settings.APP_ROLE


@db
def test_issuing_is_validated(issue, world):
    acme, _, apps = world
    with pytest.raises(InvalidInput, match="company_email"):
        issue(services.Invitee("Ada", "not-an-email"))
    with pytest.raises(InvalidInput, match="full_name"):
        issue(services.Invitee(" ", "ada@acme.example"))
    with pytest.raises(InvalidInput, match="full_name: Remove the control characters"):
        issue(services.Invitee("Ada\nRedeemed INV-000000: Mallory", "ada@acme.example"))
    with pytest.raises(InvalidInput, match="between 1 hour and 30 days"):
        issue(expires_in=timedelta(minutes=5))
    with pytest.raises(InvalidInput, match="between 1 hour and 30 days"):
        issue(expires_in=timedelta(days=31))
    with pytest.raises(InvalidInput, match="not drop table, " + "x" * 60):
        issue(permissions=["manager", "Drop Table", "x" * 60])
    with pytest.raises(InvalidInput, match="Restrictions are a JSON object"):
        issue(restrictions={"note": "x" * 5000})
    with pytest.raises(InvalidInput, match="another client"):
        services.issue_invitation(actor=None, client=acme, application=apps["globex"], invitee=ADA)
    issue()
    with pytest.raises(Conflict, match="already has a pending invitation"):
        issue(services.Invitee("Ada L.", ADA.company_email.upper()))
    assert Invitation.objects.count() == 1


@db
def test_free_tier_has_no_multi_use_links(issue, make_client):
    from clients import services as client_services

    initech = make_client("initech", tier="free")
    app = client_services.configure_application(actor=None, client=initech, app_code="onboarding")
    with pytest.raises(Refused, match="no multi-use invitations"):
        services.issue_invitation(actor=None, client=initech, application=app, invitee=ADA, max_uses=2)


@committed
def test_no_invitee_data_in_any_column_or_log_line(issue, world, caplog):
    caplog.set_level(logging.DEBUG)
    invitation, _ = issue(ADA)
    services.resend_invitation(actor=None, invitation=invitation, invitee=ADA)
    _, other = issue(GRACE, max_uses=2)
    services.redeem_invitation(actor=None, token=other)
    services.revoke_invitation(actor=None, invitation=invitation, reason="duplicate")

    needles = [ADA.full_name, ADA.company_email, ADA.private_email, GRACE.full_name, GRACE.company_email, "Lovelace"]
    found = []
    with connect_as("default") as owner:  # the owner, with RLS lifted in a transaction that is rolled back
        tables = [row[0] for row in owner.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            owner.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(sql.Identifier(table)))
            for (row,) in owner.execute(sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table))):
                found += [(table, needle) for needle in needles if needle.lower() in row.lower()]
        owner.rollback()
    assert len(tables) > 15 and found == []
    assert not [needle for needle in needles if needle.lower() in caplog.text.lower()]


@db
def test_revoking_needs_a_reason_and_is_safe_to_repeat(issue):
    invitation, _ = issue()
    with pytest.raises(InvalidInput, match="Say why"):
        services.revoke_invitation(actor=None, invitation=invitation, reason="")
    with pytest.raises(InvalidInput, match="reason: Remove the control characters"):
        services.revoke_invitation(actor=None, invitation=invitation, reason="left\x1b[2J")
    services.revoke_invitation(actor=None, invitation=invitation, reason="left the company")
    services.revoke_invitation(actor=None, invitation=invitation, reason="again")
    invitation.refresh_from_db()
    assert (invitation.status, invitation.revoke_reason) == ("revoked", "left the company")
    assert AuditEvent.objects.filter(action="invitation.revoked").count() == 1
    with pytest.raises(Refused, match="only pending or expired ones are resent"):
        services.resend_invitation(actor=None, invitation=invitation, invitee=ADA)


@db
def test_resend_needs_the_same_invitee(issue):
    invitation, _ = issue()
    with pytest.raises(InvalidInput, match="not the company e-mail"):
        services.resend_invitation(actor=None, invitation=invitation, invitee=GRACE)


# --- Cleanup -----------------------------------------------------------------------------------


def _make_overdue_and_finished(issue, count: int):
    for n in range(count):
        invitation, _ = issue(services.Invitee("Some One", f"p{n}@acme.example"), expires_in=timedelta(hours=1))
        if n % 2:
            services.revoke_invitation(actor=None, invitation=invitation, reason="test")


@committed
def test_cleanup_expires_then_purges_and_is_idempotent(issue):
    _make_overdue_and_finished(issue, 6)  # 3 pending, 3 revoked
    later = timezone.now() + timedelta(hours=2)
    with time_machine.travel(later):
        assert services.cleanup_invitations(actor=None, dry_run=True).pending_expiry == 3
        first = services.cleanup_invitations(actor=None, retention_days=30)
        assert (first.expired, first.purged) == (3, 0)
    with time_machine.travel(later + timedelta(days=31)):
        second = services.cleanup_invitations(actor=None, retention_days=30, batch_size=2)
        assert (second.expired, second.purged) == (0, 6)
        again = services.cleanup_invitations(actor=None, retention_days=30)
        assert (again.expired, again.purged) == (0, 0)
    assert not Invitation.objects.exists()
    assert AuditEvent.objects.filter(action="invitation.cleanup").count() == 3
    assert AuditEvent.objects.filter(action="invitation.issued").count() == 6  # the trail stays


@committed
def test_a_second_cleanup_run_at_once_steps_aside(issue):
    with single_run(services.CLEANUP_LOCK) as held:
        assert held
        assert services.cleanup_invitations(actor=None).locked is True
    assert services.cleanup_invitations(actor=None).locked is False


@committed
def test_no_advisory_lock_stops_cleanup_and_the_tenant_role_cannot_reach_its_lock(issue, app_connection):
    """Issue 8.1: the lock keys of the old code, held by another session, no longer stop the run;
    the row the run locks is out of the tenant role's reach."""
    with connect_as_superuser() as other:  # no hardening restrains it: as an unhardened installation would be
        for key in ("invitations:cleanup", "invitations.cleanup", services.CLEANUP_LOCK):
            other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [key])
        assert services.cleanup_invitations(actor=None).locked is False
    for statement in ("SELECT * FROM clients_joblock FOR UPDATE", "INSERT INTO clients_joblock VALUES ('x')"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_connection.execute(statement)
        app_connection.rollback()


@committed
def test_a_purge_killed_halfway_leaves_an_event_for_every_row_it_deleted(issue):
    """Issue 8.7: each purge batch records its count in the transaction that deletes."""
    _make_overdue_and_finished(issue, 10)
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        services.cleanup_invitations(actor=None)  # everything is finished now
    before = Invitation.objects.count()

    def die_after_two_purge_batches(stage, done):
        if stage == "purged" and done >= 4:
            raise KeyboardInterrupt

    with time_machine.travel(timezone.now() + timedelta(days=400)), pytest.raises(KeyboardInterrupt):
        services.cleanup_invitations(actor=None, batch_size=2, progress=die_after_two_purge_batches)
    deleted = before - Invitation.objects.count()
    purges = AuditEvent.objects.filter(action="invitation.purged")
    assert deleted == 4 and sum(event.changes["purged"] for event in purges) == deleted
    assert purges.count() == 2 and not AuditEvent.objects.filter(action="invitation.cleanup", changes__purged=4)


@committed
def test_a_cleanup_killed_halfway_resumes_on_the_next_run(issue):
    _make_overdue_and_finished(issue, 10)  # 5 pending

    def die_after_the_first_batch(stage, done):
        if stage == "expired" and done >= 2:
            raise KeyboardInterrupt

    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        with pytest.raises(KeyboardInterrupt):
            services.cleanup_invitations(actor=None, batch_size=2, progress=die_after_the_first_batch)
        assert Invitation.objects.filter(status="expired").count() == 2  # the first batch committed
        assert services.cleanup_invitations(actor=None, batch_size=2).expired == 3
        assert services.cleanup_invitations(actor=None).locked is False  # the killed run released its lock


@committed
def test_every_public_invitation_service_writes_its_audit_event(issue):
    """Ratchet, as for clients and vault: a new public service fails here until its event is asserted."""
    import inspect

    first, first_token = issue(ADA)
    second, _ = issue(GRACE, expires_in=timedelta(hours=1))
    cases = {
        "issue_invitation": (lambda: issue(services.Invitee("New Person", "new@acme.example")), "invitation.issued"),
        "resend_invitation": (
            lambda: services.resend_invitation(actor=None, invitation=first, invitee=ADA),
            "invitation.resent",
        ),
        "redeem_invitation": (
            lambda: services.redeem_invitation(
                actor=None, token=services.resend_invitation(actor=None, invitation=first, invitee=ADA)
            ),
            "invitation.redeemed",
        ),
        "revoke_invitation": (
            lambda: services.revoke_invitation(actor=None, invitation=second, reason="test"),
            "invitation.revoked",
        ),
        "expire_invitations": (
            lambda: (
                Invitation.objects.filter(status="pending").update(expires_at=timezone.now() - timedelta(minutes=1)),
                services.expire_invitations(actor=None),
            ),
            "invitation.expired",
        ),
        "cleanup_invitations": (lambda: services.cleanup_invitations(actor=None), "invitation.cleanup"),
        "issue_invitations": (
            lambda: services.issue_invitations(
                actor=None,
                client=first.client,
                requests=[
                    services.InvitationRequest(2, services.Invitee("Batch Person", "batch@acme.example"), "onboarding")
                ],
            ),
            "invitation.batch_issued",
        ),
    }
    public = {
        name
        for name, function in inspect.getmembers(services, inspect.isfunction)
        if function.__module__ == services.__name__ and not name.startswith("_")
    }
    reads = {"validate_invitation"}  # checks only; writes nothing
    assert public - reads == set(cases), sorted(public ^ set(cases))
    for name, (call, action) in cases.items():
        before = AuditEvent.objects.filter(action=action).count()
        call()
        assert AuditEvent.objects.filter(action=action).count() == before + 1, name
    assert first_token


@db
def test_resending_an_expired_invitation_revives_it(issue):
    invitation, _ = issue(expires_in=timedelta(hours=1))
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert services.expire_invitations(actor=None) == 1
        token = services.resend_invitation(actor=None, invitation=invitation, invitee=ADA)
        revived = services.validate_invitation(token=token)
    assert (revived.status, revived.finished_at, revived.resend_count) == ("pending", None, 1)
    assert AuditEvent.objects.get(action="invitation.resent").changes["revived"] is True


@db
def test_a_downgrade_the_invitation_seats_do_not_fit_is_refused(issue, world):
    from clients import services as client_services

    acme = world[0]
    issue(max_uses=150)  # pro: 1,000 users; free: 100
    client_services.configure_application(actor=None, client=acme, app_code="onboarding", features=[])
    with pytest.raises(Refused, match="150 seats held by invitations, the tier allows 100 users"):
        client_services.update_client(actor=None, client=acme, tier="free")
