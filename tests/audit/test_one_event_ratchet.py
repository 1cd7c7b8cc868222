"""Ratchet: every service that writes records exactly one audit event per operation.

Every public function with a keyword-only `actor` in an app's `services.py` is found by inspection; each must
have a scenario here (run, then exactly one new event) or an exemption that says why it records
another number (batch operations record one event per batch). A new service without either, or a
service that starts recording zero or two events for one operation, fails this test.
"""

from __future__ import annotations

import importlib
import inspect
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django_otp.oath import totp

from audit import services as audit_services
from audit.models import AuditEvent
from clients import services as client_services
from invitations import services as invitation_services
from invitations.services import Invitee
from staff import services as staff_services
from vault import keyring
from vault import services as vault_services

APPS = ("audit", "clients", "invitations", "staff", "vault")

EXEMPT = {
    "audit.services.record": "the recorder itself",
    "invitations.services.expire_invitations": "one event per expiring batch (docs/invitations.md)",
    "invitations.services.cleanup_invitations": "one event per purged batch and one for the run (docs/invitations.md)",
    "vault.services.rotate_master_key": "one event per re-wrapped batch (docs/vault.md)",
    "vault.services.rewrap": "one event per re-encrypted batch (docs/vault.md)",
}


# Operations that record several events on purpose, with the exact actions (none today: create_client,
# create_staff_user and erase_client were folded into one event each when this ratchet found them).
# create_staff_user with clients also records one staff.client_access_granted per client, in that
# client's own chain, so each client's trail shows who was given access (docs/audit.md).
COMPOSITE: dict[str, list[str]] = {}


def writing_services() -> set[str]:
    found = set()
    for app in APPS:
        module = importlib.import_module(f"{app}.services")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            own = function.__module__ == module.__name__ and not name.startswith("_")
            actor = inspect.signature(function).parameters.get("actor")
            # The services' convention: `*, actor` (keyword-only, no default). Helpers taking an actor positionally
            # (actor_fields) only describe one.
            if own and actor is not None and actor.kind is inspect.Parameter.KEYWORD_ONLY:
                found.add(f"{app}.services.{name}")
    return found


def in_transaction(operation):
    def run():
        with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
            operation()

    return run


def scenarios(make_client, settings_fixture):
    """(service, operation) in the order they run; each operation is one call of the service (None: set-up)."""
    acme = make_client("acme")
    doomed = make_client("doomed")
    state: dict = {}
    user = staff_services.create_staff_user(actor=None, username="ada", email="ada@thepia.net", role="Support")
    group = Group.objects.get(name="Auditor")
    application = client_services.configure_application(actor=None, client=acme, app_code="onboarding")

    def issue():
        state["invitation"], state["token"] = invitation_services.issue_invitation(
            actor=None, client=acme, application=application, invitee=Invitee("Ada", "ada@acme.thepia.net")
        )

    def issue_second():
        _, state["second_token"] = invitation_services.issue_invitation(
            actor=None, client=acme, application=application, invitee=Invitee("Bob", "bob@acme.thepia.net")
        )

    def start_totp():
        state["device"] = staff_services.start_totp_enrolment(actor=None, user=user)

    def confirm_totp():
        device = state["device"]
        token = f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):0{device.digits}d}"
        assert staff_services.confirm_totp_enrolment(actor=None, user=user, token=token) is not None

    def rotate_master_key():
        # Set-up, not counted (rotation is an exempt batch operation): then the old key can be retired.
        state["old_master"] = keyring.load().primary.id
        settings_fixture.FLOWS_MASTER_KEYS = f"{keyring.generate('next')},{settings.FLOWS_MASTER_KEYS}"
        vault_services.rotate_master_key(actor=None)
        vault_services.rewrap(actor=None)

    def secret():
        state["secret"] = vault_services.set_secret(
            actor=None, client=acme, provider="slack", secret_type="api_key", value="x" * 20
        )

    def api_key():
        state["api_key"], _ = client_services.create_api_key(
            actor=None, client=acme, name="prod", scopes=["configuration:read"]
        )

    return [
        (None, lambda: vault_services.rotate_signing_key(actor=None)),  # invitations are signed
        ("clients.services.create_client", lambda: make_client("globex")),
        ("clients.services.update_client", lambda: client_services.update_client(actor=None, client=acme,
                                                                                  legal_name="Acme Two")),
        ("clients.services.deactivate_client", lambda: client_services.deactivate_client(actor=None, client=acme,
                                                                                          reason="unpaid")),
        ("clients.services.reactivate_client", lambda: client_services.reactivate_client(actor=None, client=acme)),
        ("clients.services.configure_application", lambda: client_services.configure_application(
            actor=None, client=acme, app_code="payroll")),
        ("clients.services.create_api_key", api_key),
        ("clients.services.set_api_key_rate_limit", lambda: client_services.set_api_key_rate_limit(
            actor=None, api_key=state["api_key"], rate_limit=10)),
        ("clients.services.revoke_api_key", lambda: client_services.revoke_api_key(actor=None,
                                                                                    api_key=state["api_key"])),
        ("invitations.services.issue_invitation", issue),
        ("invitations.services.resend_invitation", lambda: invitation_services.resend_invitation(
            actor=None, invitation=state["invitation"], invitee=Invitee("Ada", "ada@acme.thepia.net"))),
        ("invitations.services.revoke_invitation", lambda: invitation_services.revoke_invitation(
            actor=None, invitation=state["invitation"], reason="sent to the wrong person")),
        ("invitations.services.issue_invitation", issue_second),
        # A batch is one operation: one invitation.batch_issued event naming every code (docs/invitations.md).
        ("invitations.services.issue_invitations", lambda: invitation_services.issue_invitations(
            actor=None, client=acme, requests=[
                invitation_services.InvitationRequest(line=n, invitee=Invitee(f"Batch {n}", f"b{n}@acme.thepia.net"),
                                                      app_code="onboarding")
                for n in (2, 3)
            ])),
        ("invitations.services.redeem_invitation", lambda: invitation_services.redeem_invitation(
            actor=None, token=state["second_token"])),
        ("staff.services.create_staff_user", lambda: staff_services.create_staff_user(
            actor=None, username="bob", email="bob@thepia.net", role="Auditor")),
        ("staff.services.grant_client_access", lambda: staff_services.grant_client_access(actor=None, user=user,
                                                                                           client=acme)),
        ("staff.services.revoke_client_access", lambda: staff_services.revoke_client_access(actor=None, user=user,
                                                                                             client=acme)),
        ("staff.services.grant_group_client_access", lambda: staff_services.grant_group_client_access(
            actor=None, group=group, client=acme)),
        ("staff.services.revoke_group_client_access", lambda: staff_services.revoke_group_client_access(
            actor=None, group=group, client=acme)),
        ("staff.services.add_to_group", lambda: staff_services.add_to_group(actor=None, user=user, group=group)),
        # These two record inside the admin's save, in its transaction.
        ("staff.services.record_groups_changed", in_transaction(lambda: staff_services.record_groups_changed(
            actor=None, user=user, before=[]))),
        ("staff.services.record_permissions_changed", in_transaction(lambda: staff_services.record_permissions_changed(
            actor=None, holder=user, before=[], after=["audit.view_auditevent"]))),
        ("staff.services.start_totp_enrolment", start_totp),
        ("staff.services.confirm_totp_enrolment", confirm_totp),
        ("staff.services.reset_second_factor", lambda: staff_services.reset_second_factor(actor=None, user=user)),
        ("staff.services.record_sign_in_step", lambda: staff_services.record_sign_in_step(
            actor=None, user=user, action="staff.login_failed")),
        ("staff.services.unlock", lambda: staff_services.unlock(actor=None, user=user)),
        ("staff.services.set_password", lambda: staff_services.set_password(
            actor=None, user=User.objects.get(pk=user.pk), password="a long enough passphrase 42")),
        ("vault.services.create_data_key", lambda: vault_services.create_data_key(actor=None, client=acme)),
        ("vault.services.set_secret", secret),
        ("vault.services.use_secret", lambda: vault_services.use_secret(actor=None, secret=state["secret"])),
        ("vault.services.reveal_secret", lambda: vault_services.reveal_secret(actor=None, secret=state["secret"],
                                                                               reason="incident 42")),
        ("vault.services.deactivate_secret", lambda: vault_services.deactivate_secret(actor=None,
                                                                                       secret=state["secret"])),
        ("vault.services.delete_secret", lambda: vault_services.delete_secret(actor=None, secret=state["secret"])),
        ("vault.services.rotate_signing_key", lambda: vault_services.rotate_signing_key(actor=None)),
        ("clients.services.erase_client", lambda: client_services.erase_client(actor=None, client=doomed,
                                                                                confirm="doomed")),
        (None, rotate_master_key),
        ("vault.services.retire_master_key", lambda: vault_services.retire_master_key(
            actor=None, key_id=state["old_master"])),
        ("audit.services.record_verification", lambda: audit_services.record_verification(
            actor=None, summary=SimpleNamespace(chains=1, events=1, checkpoints=0), problems={})),
        ("audit.services.create_checkpoints", lambda: audit_services.create_checkpoints(actor=None)),
        ("audit.services.export_events", lambda: audit_services.export_events(actor=None, export_format="jsonl")),
    ]  # fmt: skip


def test_exemptions_name_existing_services():
    assert not (set(EXEMPT) | set(COMPOSITE)) - writing_services(), "an exemption names a service that is gone"


def test_each_writing_service_records_exactly_one_event_per_operation(committed, make_client, settings):
    steps = scenarios(make_client, settings)
    missing = writing_services() - {name for name, _ in steps} - set(EXEMPT)
    assert not missing, f"services without a one-event scenario (add one, or an exemption with its reason): {missing}"
    wrong = []
    for name, operation in steps:
        last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        operation()
        if name is None:  # set-up for the next step
            continue
        recorded = list(AuditEvent.objects.filter(id__gt=last).order_by("id").values_list("action", flat=True))
        expected = COMPOSITE.get(name)
        if (expected is None and len(recorded) != 1) or (expected is not None and recorded != expected):
            wrong.append(f"{name}: {len(recorded)} events {recorded}")
    assert not wrong, "one operation, one event:\n" + "\n".join(wrong)
