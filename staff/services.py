"""Changes of staff access: users, groups, permissions and client grants. Each one audited with its actor."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from guardian.shortcuts import assign_perm

from audit.services import record
from clients.models import Client
from config.errors import InvalidInput
from staff.models import ClientUserGrant
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


def grant_group_client_access(*, actor, group: Group, client: Client) -> None:
    with _atomic():
        assign_perm(ACCESS_PERMISSION, group, client)
        record(actor=actor, action="staff.client_access_granted", client=client, target=group,
               changes={"group": group.name, "client": client.code})  # fmt: skip


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
        record(actor=actor, action="staff.user_created", target=user, changes={"email": email, "role": group.name})
        add_to_group(actor=actor, user=user, group=group)
        for client in clients:
            grant_client_access(actor=actor, user=user, client=client)
        return user


def set_active(*, actor, user: User, active: bool) -> None:
    with _atomic():
        if user.is_active == active:
            return
        user.is_active = active
        user.save(update_fields=["is_active"])
        record(actor=actor, action="staff.user_reactivated" if active else "staff.user_deactivated", target=user)
