"""The roles: groups converged from the one matrix, documented as the same table."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS

from staff.roles import ALL_CLIENTS_PERMISSION, EVERY_PERMISSION, ROLES, converge, matrix_row

db = pytest.mark.django_db(databases="__all__")


def group_permissions(name: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=name).permissions.values_list("content_type__app_label", "codename")
    }


@db
def test_every_role_is_a_group_with_exactly_its_permissions():
    for role in ROLES:
        expected = (
            {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")}
            if role.permissions == (EVERY_PERMISSION,)
            else set(role.permissions)
        )
        assert group_permissions(role.name) == expected, role.name
        assert (ALL_CLIENTS_PERMISSION in expected) == role.all_clients, role.name


def test_converging_again_repairs_a_group_changed_by_hand(committed):
    """Committed: the hook runs on the owner's connection, which sees only committed rows."""
    support = Group.objects.get(name="Support")
    support.permissions.add(Permission.objects.get(codename="reveal_secret"))
    support.permissions.remove(Permission.objects.get(codename="view_client"))
    converge(apps, DEFAULT_DB_ALIAS)
    converge(apps, DEFAULT_DB_ALIAS)  # twice: nothing more changes
    assert group_permissions("Support") == set(next(r for r in ROLES if r.name == "Support").permissions)


def test_the_documented_matrix_is_the_declared_one():
    document = (settings.BASE_DIR / "docs" / "staff-access.md").read_text()
    for role in ROLES:
        assert matrix_row(role) in document, f"docs/staff-access.md: update the row of {role.name}"


@db
@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        ("Client manager", {"invitations.issue_invitation", "clients.change_client"}, {"vault.reveal_secret",
         "vault.rotate_keys", "clients.erase_client", ALL_CLIENTS_PERMISSION}),
        ("Support", {"invitations.resend_invitation", "clients.view_client"}, {"clients.change_client",
         "invitations.issue_invitation", ALL_CLIENTS_PERMISSION}),
        ("Auditor", {"audit.export_auditevent", ALL_CLIENTS_PERMISSION}, {"clients.change_client",
         "vault.reveal_secret"}),
        ("Security officer", {"vault.reveal_secret", "vault.rotate_keys", "clients.erase_client"},
         {"clients.change_client", "invitations.issue_invitation"}),
    ],
)  # fmt: skip
def test_what_each_role_may_and_may_not_do(role, allowed, refused):
    held = group_permissions(role)
    assert allowed <= held and not (refused & held)
