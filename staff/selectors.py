"""Read-side helpers of staff access: a staff user by name, who may see a client, which clients a user holds."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Q

from clients.models import Client
from config.errors import NotFound, excerpt
from staff.models import ClientGroupGrant, ClientUserGrant
from staff.roles import ALL_CLIENTS_PERMISSION


def get_staff_user(username: str) -> User:
    user = User.objects.filter(username=(username or "").strip()).first()
    if user is None:
        raise NotFound(f"No staff user '{excerpt(username)}'.", code="user_not_found")
    return user


def user_access(user: User) -> dict:
    """A user's roles, whether they see every client, and the clients granted to them or their groups."""
    direct = ClientUserGrant.objects.filter(user=user).values_list("content_object__code", flat=True)
    by_group = ClientGroupGrant.objects.filter(group__user=user).values_list("content_object__code", flat=True)
    return {
        "username": user.username,
        "active": user.is_active,
        "superuser": user.is_superuser,
        "roles": sorted(user.groups.values_list("name", flat=True)),
        "all_clients": user.is_superuser or user.has_perm(ALL_CLIENTS_PERMISSION),
        "clients": sorted(set(direct) | set(by_group)),
    }


def client_access(client: Client) -> dict:
    """Who may see a client: users and groups granted it, and the staff of platform-wide roles."""
    app_label, codename = ALL_CLIENTS_PERMISSION.split(".")
    everywhere = Q(is_superuser=True) | Q(
        groups__permissions__codename=codename, groups__permissions__content_type__app_label=app_label
    )
    return {
        "client": client.code,
        "users": sorted(ClientUserGrant.objects.filter(content_object=client).values_list("user__username", flat=True)),
        "groups": sorted(ClientGroupGrant.objects.filter(content_object=client).values_list("group__name", flat=True)),
        "platform_wide": sorted(
            set(User.objects.filter(everywhere, is_active=True, is_staff=True).values_list("username", flat=True))
        ),
    }
