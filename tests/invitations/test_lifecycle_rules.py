"""Issue 8.5: an invitation's lifecycle is enforced by the database for every role, tested with raw SQL."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.conf import settings

from invitations import services as invitation_services
from invitations.models import Invitation
from tests.conftest import connect_as
from tests.invitations.conftest import ADA

pytestmark = pytest.mark.usefixtures("committed")


def as_tenant(connection, client) -> None:
    connection.execute("SELECT set_config('app.client_id', %s, true)", [str(client.pk)])


@pytest.fixture
def accepted(world, issue):
    invitation, token = issue(ADA)
    invitation_services.redeem_invitation(actor=None, token=token)
    return Invitation.objects.get(pk=invitation.pk), token


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE invitations_invitation SET status = 'pending'",
        "UPDATE invitations_invitation SET used_count = 0",
        "UPDATE invitations_invitation SET status = 'pending', used_count = 0",
        "UPDATE invitations_invitation SET status = 'revoked'",
        "UPDATE invitations_invitation SET used_count = used_count + 1",
    ],
)
def test_the_tenant_role_cannot_make_an_accepted_invitation_redeemable_again(accepted, app_connection, statement):
    invitation, _ = accepted
    as_tenant(app_connection, invitation.client)
    with pytest.raises(psycopg.errors.CheckViolation):
        app_connection.execute(statement)
    app_connection.rollback()
    invitation.refresh_from_db()
    assert (invitation.status, invitation.used_count) == ("accepted", 1)


def test_the_rules_hold_for_the_console_role_too_and_resend_still_revives(accepted, issue):
    invitation, _ = accepted
    with connect_as(settings.CONSOLE_DB_ALIAS) as console:
        for statement in (
            "UPDATE invitations_invitation SET status = 'pending', used_count = 0 WHERE id = %s",
            "UPDATE invitations_invitation SET max_uses = 5 WHERE id = %s",
        ):
            with pytest.raises(psycopg.errors.CheckViolation):
                console.execute(statement, [invitation.pk])
            console.rollback()
    expired, _ = issue(invitation_services.Invitee("Grace Hopper", "grace@acme.example"), expires_in=timedelta(hours=1))
    Invitation.objects.filter(pk=expired.pk).update(status="expired")
    with connect_as(settings.TENANT_DB_ALIAS) as tenant:  # not even the tenant role may revive it
        as_tenant(tenant, invitation.client)
        with pytest.raises(psycopg.errors.CheckViolation):
            tenant.execute("UPDATE invitations_invitation SET status = 'pending' WHERE id = %s", [expired.pk])
    invitation_services.resend_invitation(
        actor=None, invitation=expired, invitee=invitation_services.Invitee("Grace Hopper", "grace@acme.example")
    )
    assert Invitation.objects.get(pk=expired.pk).status == "pending"


@pytest.fixture
def pending(world, issue):
    invitation, _ = issue(ADA)
    return invitation


def test_the_tenant_role_cannot_back_date_or_revoke_and_uses_count_one_at_a_time(pending, app_connection):
    for statement in (
        "UPDATE invitations_invitation SET status = 'revoked', finished_at = '1990-01-01'",  # no revoker
        "UPDATE invitations_invitation SET finished_at = '1990-01-01'",  # no status change
        "UPDATE invitations_invitation SET accepted_at = '1999-01-01'",
    ):
        as_tenant(app_connection, pending.client)
        with pytest.raises(psycopg.errors.CheckViolation):
            app_connection.execute(statement)
        app_connection.rollback()
    # A redemption written by hand gets the database's time, whatever it says.
    as_tenant(app_connection, pending.client)
    app_connection.execute(
        "UPDATE invitations_invitation SET used_count = 1, status = 'accepted', accepted_at = '1999-01-01',"
        " finished_at = NULL"
    )
    now = app_connection.execute("SELECT now()").fetchone()[0]
    app_connection.commit()
    pending.refresh_from_db()
    assert pending.status == "accepted" and pending.finished_at == now and pending.accepted_at == now


def test_a_secrets_usage_never_goes_back(world, app_connection):
    from vault import services as vault_services

    acme, _, _ = world
    vault_services.set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="v")
    as_tenant(app_connection, acme)
    app_connection.execute("UPDATE vault_secret SET usage_count = 5, last_used_at = now()")
    app_connection.commit()
    as_tenant(app_connection, acme)
    for statement in ("UPDATE vault_secret SET usage_count = 0", "UPDATE vault_secret SET last_used_at = NULL"):
        with pytest.raises(psycopg.errors.CheckViolation):
            app_connection.execute(statement)
        app_connection.rollback()
        as_tenant(app_connection, acme)
