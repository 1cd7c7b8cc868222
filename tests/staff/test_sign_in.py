"""Sign-in hardening: second factor required and enforced, lockout audited, elevated sessions, idle timeout, CSP."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client as Browser
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from staff import services
from vault.models import DataKey
from vault.services import set_secret

pytestmark = pytest.mark.django_db(databases="__all__")
PASSWORD = "Corr3ct-horse-battery"


def code_of(device: TOTPDevice) -> str:
    """What the authenticator app shows now (RFC 6238 from the device's key)."""
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


@pytest.fixture
def officer(staff_user):
    user = staff_user("officer", "Security officer")
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def require_mfa(settings):
    settings.FLOWS_STAFF_REQUIRE_MFA = True


def enrol(browser: Browser, user: User) -> list[str]:
    page = browser.get(reverse("staff_mfa_enrol")).content.decode()
    assert "<path" in page and 'src="http' not in page  # the QR code is drawn here, as SVG; nothing fetched
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert device.key in page
    response = browser.post(reverse("staff_mfa_enrol"), {"token": code_of(device)})
    return re.findall(r"<code>([a-z0-9]{8})</code>", response.content.decode())


def test_without_a_second_factor_no_admin_page_is_reachable(client, officer, require_mfa, make_client):
    acme = make_client("acme")
    client.force_login(officer)
    for url in (
        reverse("admin:index"),
        reverse("admin:clients_client_changelist"),
        reverse("admin:clients_client_change", args=[acme.pk]),
        reverse("admin:audit_auditevent_changelist"),
        reverse("staff_elevate"),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("staff_mfa_enrol")), url
    codes = enrol(client, officer)
    assert len(codes) == services.RECOVERY_CODES
    assert client.get(reverse("admin:clients_client_changelist")).status_code == 200
    assert AuditEvent.objects.filter(action="staff.mfa_enrolled", target_id=str(officer.pk)).exists()


def test_with_debug_defaults_the_second_factor_is_not_required(client, officer, settings):
    settings.FLOWS_STAFF_REQUIRE_MFA = False
    client.force_login(officer)
    assert client.get(reverse("admin:index")).status_code == 200


def test_a_recovery_code_signs_in_once(client, officer, require_mfa):
    client.force_login(officer)
    codes = enrol(client, officer)
    later = Browser()
    later.force_login(officer)
    assert later.get(reverse("admin:index")).url.startswith(reverse("staff_mfa_verify"))
    response = later.post(reverse("staff_mfa_verify") + "?next=/admin/", {"token": codes[0]})
    assert response.status_code == 302 and response.url == "/admin/"
    assert later.get(reverse("admin:index")).status_code == 200
    again = Browser()
    again.force_login(officer)
    assert again.post(reverse("staff_mfa_verify"), {"token": codes[0]}).status_code == 200  # used up
    assert again.get(reverse("admin:index")).status_code == 302
    assert AuditEvent.objects.filter(action="staff.mfa_failed", target_id=str(officer.pk)).count() == 1


def test_repeated_bad_passwords_lock_the_account_and_are_audited(client, officer, settings, caplog):
    settings.AXES_FAILURE_LIMIT = 3
    login = reverse("admin:login")
    for _ in range(3):
        client.post(login, {"username": "officer", "password": "wrong"})
    locked = client.post(login, {"username": "officer", "password": PASSWORD})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # The lockout, and each attempt refused while it lasts, is an event naming the account.
    lockouts = AuditEvent.objects.filter(action="staff.locked_out")
    assert lockouts and {(e.target_id, e.target_label) for e in lockouts} == {(str(officer.pk), "officer")}
    services.unlock(actor=None, user=officer)
    assert client.post(login, {"username": "officer", "password": PASSWORD}).status_code == 302
    assert AuditEvent.objects.filter(action="staff.unlocked", target_id=str(officer.pk)).exists()
    # The trail names the account; the logs do not (django-axes would log the username and address).
    logged = [record.getMessage() for record in caplog.records]
    assert not [line for line in logged if "officer" in line or "127.0.0.1" in line], logged


def test_reveal_needs_a_recent_re_authentication_that_expires(client, officer, make_client):
    acme = make_client("acme")
    secret = set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="v" * 20)
    reveal = reverse("admin:vault_secret_reveal", args=[secret.pk])
    client.force_login(officer)
    response = client.get(reveal)
    assert response.status_code == 302 and response.url.startswith(reverse("staff_elevate"))
    elevate = client.get(response.url).content.decode()
    assert "needs a recent re-authentication" in elevate and "5 minutes" in elevate
    assert client.post(response.url, {"password": "wrong"}).status_code == 200
    assert AuditEvent.objects.filter(action="staff.elevation_failed").count() == 1
    back = client.post(response.url, {"password": PASSWORD})
    assert back.status_code == 302 and back.url == reveal
    assert "valid until" in client.get(reveal).content.decode()
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        assert client.get(reveal).url.startswith(reverse("staff_elevate"))
    assert AuditEvent.objects.filter(action="staff.elevated", target_id=str(officer.pk)).count() == 1


def test_a_client_manager_is_refused_reveal_and_erase(client, staff_user, make_client):
    acme = make_client("acme")
    secret = set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="v" * 20)
    manager = staff_user("manager", "Client manager", [acme])
    client.force_login(manager)
    assert client.get(reverse("admin:vault_secret_reveal", args=[secret.pk])).status_code == 403
    assert client.get(reverse("admin:clients_client_erase", args=[acme.pk])).status_code == 403
    assert client.post(reverse("admin:clients_client_erase", args=[acme.pk]), {"confirm": "acme"}).status_code == 403
    assert not AuditEvent.objects.filter(action="client.erased").exists()


def test_a_security_officer_erases_after_re_authenticating(client, officer, make_client):
    acme = make_client("acme")
    erase = reverse("admin:clients_client_erase", args=[acme.pk])
    client.force_login(officer)
    assert client.get(erase).url.startswith(reverse("staff_elevate"))
    client.post(reverse("staff_elevate"), {"password": PASSWORD})
    assert "valid until" in client.get(erase).content.decode()
    assert client.post(erase, {"confirm": "acme"}).status_code == 302
    (event,) = AuditEvent.objects.filter(action="client.erased")
    assert event.actor_label == "officer"


def test_granting_from_the_client_page_needs_re_authentication_and_is_audited(
    client, admin_user, staff_user, make_client
):
    acme = make_client("acme")
    sam = staff_user("sam", "Support")
    admin_user.set_password(PASSWORD)
    admin_user.save()
    client.force_login(admin_user)
    access = reverse("admin:clients_client_access", args=[acme.pk])
    assert client.post(access, {"username": "sam"}).url.startswith(reverse("staff_elevate"))
    assert not AuditEvent.objects.filter(action="staff.client_access_granted").exists()
    client.post(reverse("staff_elevate"), {"password": PASSWORD})
    client.post(access, {"username": "sam"})
    (granted,) = AuditEvent.objects.filter(action="staff.client_access_granted")
    assert granted.actor_label == "admin" and granted.target_id == str(sam.pk)
    assert "sam" in client.get(reverse("admin:clients_client_change", args=[acme.pk])).content.decode()
    client.post(access, {"username": "sam", "revoke": "yes"})
    assert AuditEvent.objects.get(action="staff.client_access_revoked").actor_label == "admin"
    client.post(access, {"group": "Support"})  # every Support member now sees acme, sam included
    sam_browser = Browser()
    sam_browser.force_login(sam)
    assert sam_browser.get(reverse("admin:clients_client_change", args=[acme.pk])).status_code == 200
    client.post(access, {"group": "Support", "revoke": "yes"})
    assert sam_browser.get(reverse("admin:clients_client_change", args=[acme.pk])).status_code == 404
    group_events = AuditEvent.objects.filter(target_type="auth.group", client_id=acme.pk).values_list(
        "action", flat=True
    )
    assert sorted(group_events) == ["staff.client_access_granted", "staff.client_access_revoked"]


def test_exporting_the_audit_trail_needs_the_permission_and_re_authentication(client, officer, staff_user, make_client):
    acme = make_client("acme")
    auditor = staff_user("auditor", "Auditor")
    auditor.set_password(PASSWORD)
    auditor.save()
    changelist = reverse("admin:audit_auditevent_changelist")
    selected = list(AuditEvent.objects.filter(client_id=acme.pk).values_list("pk", flat=True))
    action = {"action": "export_selected", "_selected_action": selected}
    client.force_login(officer)  # no export permission: the action is not offered
    assert "export_selected" not in client.get(changelist).content.decode()
    client.force_login(auditor)
    assert client.post(changelist, action).url.startswith(reverse("staff_elevate"))
    client.post(reverse("staff_elevate"), {"password": PASSWORD})
    response = client.post(changelist, action)
    assert response["Content-Type"] == "application/x-ndjson"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == len(selected)
    # The same rows as `manage.py export_audit`: chain order, with the chain fields verification needs.
    events = [json.loads(line) for line in lines]
    assert [event["seq"] for event in events] == sorted(event["seq"] for event in events)
    assert all({"prev_hash", "hash", "key_id", "mac"} <= event.keys() for event in events)
    assert AuditEvent.objects.get(action="audit.exported").changes == {"since": None, "format": "jsonl", "view": ""}


def test_an_idle_session_ends_and_an_active_one_goes_on(client, officer):
    client.force_login(officer)
    start = timezone.now()
    with time_machine.travel(start + timedelta(minutes=20)):
        assert client.get(reverse("admin:index")).status_code == 200
    with time_machine.travel(start + timedelta(minutes=45)):  # 25 idle minutes since the last request
        assert client.get(reverse("admin:index")).status_code == 200
    with time_machine.travel(start + timedelta(minutes=80)):  # 35 idle minutes
        assert client.get(reverse("admin:index")).url.startswith(reverse("admin:login"))


def test_console_pages_carry_a_content_security_policy_and_refuse_framing(client):
    response = client.get(reverse("admin:login"))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
    assert response["X-Frame-Options"] == "DENY"


def test_rotating_a_data_key_needs_re_authentication(client, officer, make_client):
    acme = make_client("acme")
    client.force_login(officer)
    before = DataKey.objects.filter(client=acme).count()
    action = {"action": "rotate_the_data_key_of_selected", "_selected_action": [acme.pk], "confirmed": "yes"}
    response = client.post(reverse("admin:clients_client_changelist"), action)
    assert response.status_code == 302 and response.url.startswith(reverse("staff_elevate"))
    assert DataKey.objects.filter(client=acme).count() == before
    client.post(reverse("staff_elevate"), {"password": PASSWORD})
    client.post(reverse("admin:clients_client_changelist"), action)
    assert DataKey.objects.filter(client=acme).count() == before + 1
