"""Every change of staff access is audited with its actor: through the services and through Django's user admin."""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from config.errors import InvalidInput
from staff import services
from staff.elevation import SESSION_KEY

pytestmark = pytest.mark.django_db(databases="__all__")
# Helpers the services and the admin hooks share: they record through the callers' events.
HELPERS = {"permission_names", "record_groups_changed", "record_permissions_changed", "record_sign_in_step"}


def current_code(user) -> str:
    """The code the user's authenticator app would show now (RFC 6238, from the device's own key)."""
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_every_public_staff_service_writes_its_audit_event(make_client, admin_user):
    acme = make_client("acme")
    user = services.create_staff_user(actor=admin_user, username="sam", email="sam@thepia.net", role="Support")
    cases = {
        "create_staff_user": (
            lambda: services.create_staff_user(actor=admin_user, username="kim", email="k@thepia.net", role="Auditor"),
            "staff.user_created",
        ),
        "grant_client_access": (
            lambda: services.grant_client_access(actor=admin_user, user=user, client=acme),
            "staff.client_access_granted",
        ),
        "revoke_client_access": (
            lambda: services.revoke_client_access(actor=admin_user, user=user, client=acme),
            "staff.client_access_revoked",
        ),
        "grant_group_client_access": (
            lambda: services.grant_group_client_access(
                actor=admin_user, group=Group.objects.get(name="Support"), client=acme
            ),
            "staff.client_access_granted",
        ),
        "add_to_group": (
            lambda: services.add_to_group(actor=admin_user, user=user, group=Group.objects.get(name="Client manager")),
            "staff.groups_changed",
        ),
        "revoke_group_client_access": (
            lambda: services.revoke_group_client_access(
                actor=admin_user, group=Group.objects.get(name="Support"), client=acme
            ),
            "staff.client_access_revoked",
        ),
        "start_totp_enrolment": (
            lambda: services.start_totp_enrolment(actor=admin_user, user=user),
            "staff.mfa_enrolment_started",
        ),
        "confirm_totp_enrolment": (
            lambda: services.confirm_totp_enrolment(actor=admin_user, user=user, token=current_code(user)),
            "staff.mfa_enrolled",
        ),
        "reset_second_factor": (lambda: services.reset_second_factor(actor=admin_user, user=user), "staff.mfa_reset"),
        "unlock": (lambda: services.unlock(actor=admin_user, user=user), "staff.unlocked"),
        "set_password": (
            lambda: services.set_password(actor=admin_user, user=user, password="An0ther-long-one"),
            "staff.password_reset",
        ),
    }
    public = {
        name
        for name, function in inspect.getmembers(services, inspect.isfunction)
        if function.__module__ == services.__name__ and not name.startswith("_")
    }
    assert public - HELPERS == set(cases)
    for name, (call, action) in cases.items():
        before = len(events(action))
        call()
        new = events(action)
        assert len(new) == before + 1, name
        assert new[-1].actor_label == admin_user.username, name


def test_grant_names_the_client_and_revoking_twice_changes_nothing(make_client, admin_user):
    acme = make_client("acme")
    user = services.create_staff_user(actor=admin_user, username="sam", email="sam@thepia.net", role="Support")
    assert services.grant_client_access(actor=admin_user, user=user, client=acme, role="Client manager")
    assert not services.grant_client_access(actor=admin_user, user=user, client=acme)
    (granted,) = events("staff.client_access_granted")
    assert granted.client_code == "acme" and granted.target_label == "sam"
    assert services.revoke_client_access(actor=admin_user, user=user, client=acme)
    assert not services.revoke_client_access(actor=admin_user, user=user, client=acme)
    assert len(events("staff.client_access_revoked")) == 1


def test_an_unknown_role_is_refused(admin_user):
    with pytest.raises(InvalidInput, match="No role"):
        services.create_staff_user(actor=admin_user, username="x", email="x@thepia.net", role="Overlord")
    assert not User.objects.filter(username="x").exists()


def elevated(client, user):
    """Signed in, with a fresh re-authentication, as the user and group pages require."""
    client.force_login(user)
    session = client.session
    session[SESSION_KEY] = (timezone.now() + timedelta(minutes=5)).isoformat()
    session.save()


def test_changes_in_djangos_user_admin_are_audited(client, admin_user):
    elevated(client, admin_user)
    response = client.post(
        reverse("admin:auth_user_add"),
        {"username": "newbie", "password1": "A-long-enough-pass-19", "password2": "A-long-enough-pass-19",
         "usable_password": "true"},
    )  # fmt: skip
    assert response.status_code == 302
    newbie = User.objects.get(username="newbie")
    assert events("staff.user_created")[-1].target_id == str(newbie.pk)
    support = Group.objects.get(name="Support")
    permission = Permission.objects.get(codename="view_secret")
    response = client.post(
        reverse("admin:auth_user_change", args=[newbie.pk]),
        {"username": "newbie", "is_active": "on", "is_staff": "on", "groups": [support.pk],
         "user_permissions": [permission.pk], "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    (groups,) = events("staff.groups_changed")
    assert groups.changes["groups"] == {"old": [], "new": ["Support"]} and groups.actor_label == admin_user.username
    (permissions,) = events("staff.permissions_changed")
    assert permissions.changes["permissions"]["new"] == ["vault.view_secret"]
    assert events("staff.user_changed")[-1].changes["is_staff"] == {"old": False, "new": True}


def test_changes_in_djangos_group_admin_are_audited(client, admin_user):
    elevated(client, admin_user)
    permission = Permission.objects.get(codename="view_secret")
    response = client.post(reverse("admin:auth_group_add"), {"name": "Night shift", "permissions": [permission.pk]})
    assert response.status_code == 302
    assert events("staff.group_created")[-1].target_label == "Night shift"
    assert events("staff.group_permissions_changed")[-1].changes["permissions"]["new"] == ["vault.view_secret"]
    night = Group.objects.get(name="Night shift")
    rename = {"name": "Day shift", "permissions": [permission.pk]}
    response = client.post(reverse("admin:auth_group_change", args=[night.pk]), rename)
    assert response.status_code == 302
    assert events("staff.group_renamed")[-1].changes == {"name": {"old": "Night shift", "new": "Day shift"}}


@pytest.mark.parametrize(
    ("url_name", "needs_id"),
    [("admin:auth_user_add", False), ("admin:auth_user_change", True), ("admin:auth_user_password_change", True),
     ("admin:auth_group_add", False), ("admin:auth_group_change", True)],
)  # fmt: skip
def test_changing_access_in_djangos_user_and_group_admin_needs_a_recent_re_authentication(
    client, admin_user, url_name, needs_id
):
    """Found by the review: these pages changed groups, superuser flags and passwords without elevation."""
    client.force_login(admin_user)
    target = Group.objects.get(name="Support").pk if "group" in url_name else admin_user.pk
    url = reverse(url_name, args=[target] if needs_id else [])
    for response in (client.get(url), client.post(url, {"is_superuser": "on", "name": "x", "username": "x"})):
        assert response.status_code == 302 and response.url.startswith(reverse("staff_elevate"))
    assert not events("staff.user_changed") and not events("staff.group_created") and not events("staff.user_created")


def test_a_password_set_in_djangos_user_admin_is_audited(client, admin_user):
    sam = services.create_staff_user(actor=None, username="sam", email="sam@thepia.net", role="Support")
    elevated(client, admin_user)
    response = client.post(
        reverse("admin:auth_user_password_change", args=[sam.pk]),
        {"password1": "A-long-enough-pass-19", "password2": "A-long-enough-pass-19", "usable_password": "true"},
    )
    assert response.status_code == 302
    (event,) = events("staff.password_reset")
    assert event.target_id == str(sam.pk) and event.actor_label == admin_user.username
