"""Changes of staff access: users, groups, permissions and client grants. Each one audited with its actor."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from guardian.shortcuts import assign_perm

from audit.services import record
from clients.models import Client
from config.errors import InvalidInput
from staff.models import ClientGroupGrant, ClientUserGrant
from staff.roles import ACCESS_PERMISSION, ROLE_NAMES, role_named


def _atomic():
    return transaction.atomic(using=settings.CONSOLE_DB_ALIAS)


def _group(role: str) -> Group:
    try:
        return Group.objects.get(name=role_named(role).name)
    except (KeyError, Group.DoesNotExist):
        raise InvalidInput(
            f"No role {role!r}; roles: {', '.join(ROLE_NAMES)}.", code="unknown_role", fields={"role": ["Unknown."]}
        ) from None


def _names(queryset) -> list[str]:
    return sorted(str(item) for item in queryset)


def grant_client_access(*, actor, user: User, client: Client, role: str | None = None) -> bool:
    """Let `user` see `client` (and, with `role`, join that role's group). Returns whether anything changed."""
    with _atomic():
        changed = False
        if role is not None:
            changed = add_to_group(actor=actor, user=user, group=_group(role))
        if not user.has_perm(ACCESS_PERMISSION, client):
            assign_perm(ACCESS_PERMISSION, user, client)
            record(actor=actor, action="staff.client_access_granted", client=client, target=user,
                   changes={"user": user.get_username(), "client": client.code})  # fmt: skip
            changed = True
        return changed


def revoke_client_access(*, actor, user: User, client: Client) -> bool:
    with _atomic():
        # Guardian's remove_perm answers a truthy tuple even when it deleted nothing: count the rows.
        app_label, codename = ACCESS_PERMISSION.split(".")
        deleted, _ = ClientUserGrant.objects.filter(
            user=user,
            content_object=client,
            permission__codename=codename,
            permission__content_type__app_label=app_label,
        ).delete()
        if not deleted:
            return False
        record(actor=actor, action="staff.client_access_revoked", client=client, target=user,
               changes={"user": user.get_username(), "client": client.code})  # fmt: skip
        return True


def _group_grants(group: Group, client: Client):
    app_label, codename = ACCESS_PERMISSION.split(".")
    return ClientGroupGrant.objects.filter(
        group=group, content_object=client, permission__codename=codename, permission__content_type__app_label=app_label
    )


def grant_group_client_access(*, actor, group: Group, client: Client) -> bool:
    """Let every member of `group` see `client` (a team that looks after a client together)."""
    with _atomic():
        if _group_grants(group, client).exists():
            return False
        assign_perm(ACCESS_PERMISSION, group, client)
        record(actor=actor, action="staff.client_access_granted", client=client, target=group,
               changes={"group": group.name, "client": client.code})  # fmt: skip
        return True


def revoke_group_client_access(*, actor, group: Group, client: Client) -> bool:
    with _atomic():
        if not _group_grants(group, client).delete()[0]:
            return False
        record(actor=actor, action="staff.client_access_revoked", client=client, target=group,
               changes={"group": group.name, "client": client.code})  # fmt: skip
        return True


def add_to_group(*, actor, user: User, group: Group) -> bool:
    with _atomic():
        if user.groups.filter(pk=group.pk).exists():
            return False
        before = _names(user.groups.all())
        user.groups.add(group)
        record_groups_changed(actor=actor, user=user, before=before)
        return True


def record_groups_changed(*, actor, user: User, before: list[str]) -> None:
    """The event for a change of a user's groups, however it was made (a service, Django's user admin)."""
    after = _names(user.groups.all())
    if after != before:
        record(
            actor=actor, action="staff.groups_changed", target=user, changes={"groups": {"old": before, "new": after}}
        )


def record_permissions_changed(*, actor, holder: User | Group, before: list[str], after: list[str]) -> None:
    if after != before:
        action = "staff.permissions_changed" if isinstance(holder, User) else "staff.group_permissions_changed"
        record(actor=actor, action=action, target=holder, changes={"permissions": {"old": before, "new": after}})


def permission_names(queryset) -> list[str]:
    return sorted(f"{app}.{codename}" for app, codename in queryset.values_list("content_type__app_label", "codename"))


def create_staff_user(*, actor, username: str, email: str, role: str, clients: list[Client] = ()) -> User:
    """A staff user with no usable password (they set one through a one-time link), a role and their clients."""
    group = _group(role)
    with _atomic():
        if User.objects.filter(username=username).exists():
            raise InvalidInput(f"User {username} exists.", code="user_exists", fields={"username": ["Taken."]})
        user = User.objects.create_user(username=username, email=email, password=None, is_staff=True)
        # One event for the user and their role; each client granted is recorded in that client's own chain.
        user.groups.add(group)
        record(actor=actor, action="staff.user_created", target=user, changes={"email": email, "role": group.name})
        for client in clients:
            grant_client_access(actor=actor, user=user, client=client)
        return user


RECOVERY_CODES = 10


def start_totp_enrolment(*, actor, user: User) -> TOTPDevice:
    """The user's unconfirmed authenticator (its key goes into the QR code), created once and kept until confirmed."""
    with _atomic():
        device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
            record(actor=actor, action="staff.mfa_enrolment_started", target=user)
        return device


def confirm_totp_enrolment(*, actor, user: User, token: str) -> tuple[TOTPDevice, list[str]] | None:
    """Confirm the new authenticator with a code from it; it replaces any earlier one, with new recovery codes.

    Returns the device and the recovery codes (shown once), or None when the code is wrong.
    """
    with _atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
        if device is None or not device.verify_token((token or "").strip()):
            return None
        TOTPDevice.objects.filter(user=user, confirmed=True).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        StaticDevice.objects.filter(user=user).delete()
        recovery = StaticDevice.objects.create(user=user, name="recovery codes", confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
        StaticToken.objects.bulk_create([StaticToken(device=recovery, token=code) for code in codes])
        record(actor=actor, action="staff.mfa_enrolled", target=user, changes={"recovery_codes": RECOVERY_CODES})
        return device, codes


def reset_second_factor(*, actor, user: User) -> bool:
    """Remove a user's authenticator and recovery codes (lost phone): they enrol again at their next sign-in."""
    with _atomic():
        deleted = TOTPDevice.objects.filter(user=user).delete()[0] + StaticDevice.objects.filter(user=user).delete()[0]
        if deleted:
            record(actor=actor, action="staff.mfa_reset", target=user)
        return bool(deleted)


def record_sign_in_step(*, actor, user: User | None, action: str, label: str = "") -> None:
    """A second-factor check, a re-authentication or a lockout, passed or failed: each one is in the trail."""
    with _atomic():
        if user is not None:
            record(actor=actor, action=action, target=user)
        else:
            record(actor=actor, action=action, target_type="auth.user", target_label=label)


def unlock(*, actor, user: User | None = None, ip: str | None = None) -> int:
    """Clear django-axes' failure records for a username or an IP address; returns how many were cleared."""
    from axes.utils import reset  # noqa: PLC0415 - axes' helpers import its handler, configured only once apps are ready

    with _atomic():
        cleared = reset(username=user.get_username()) if user is not None else reset(ip=ip)
        record_sign_in_step(actor=actor, user=user, action="staff.unlocked", label=ip or "")
        return cleared


def set_password(*, actor, user: User, password: str) -> None:
    """Development only (seed_demo's users): production staff set their own through a one-time link."""
    with _atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        record(actor=actor, action="staff.password_reset", target=user)
