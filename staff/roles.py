"""The staff roles and their permissions: the one declarative matrix, converged into Django groups.

A role says what a staff member may do; `all_clients` says where. A role with `all_clients`
grants `clients.access_all_clients`, so its members see every client; the others see only the
clients granted to them or to one of their groups (staff/models.py). docs/staff-access.md has
the same matrix as a table (a test keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.management import create_permissions
from django.db import DEFAULT_DB_ALIAS, transaction

# The object permission a client grant is made of.
ACCESS_PERMISSION = "clients.view_client"
ALL_CLIENTS_PERMISSION = "clients.access_all_clients"
EVERY_PERMISSION = "*"

_VIEW_EVERYTHING = (
    "clients.view_tier", "clients.view_client", "clients.view_application", "clients.view_apikey",
    "invitations.view_invitation", "vault.view_secret", "vault.view_secretaccess", "vault.view_datakey",
    "vault.view_signingkey", "audit.view_auditevent", "auth.view_user", "auth.view_group",
)  # fmt: skip

_CLIENT_MANAGER = (
    "clients.view_tier", "clients.view_client", "clients.add_client", "clients.change_client",
    "clients.view_application", "clients.add_application", "clients.change_application",
    "clients.view_apikey", "clients.add_apikey", "clients.change_apikey",
    "invitations.view_invitation", "invitations.issue_invitation", "invitations.resend_invitation",
    "invitations.revoke_invitation",
)  # fmt: skip
_SUPPORT = (
    "clients.view_tier", "clients.view_client", "clients.view_application", "clients.view_apikey",
    "invitations.view_invitation", "invitations.resend_invitation",
)  # fmt: skip
_SECURITY_OFFICER = (
    "clients.view_tier", "clients.view_client", "clients.erase_client", "vault.view_secret",
    "vault.reveal_secret", "vault.view_secretaccess", "vault.view_datakey", "vault.rotate_keys",
    "vault.view_signingkey", ALL_CLIENTS_PERMISSION,
)  # fmt: skip


@dataclass(frozen=True)
class Role:
    name: str
    all_clients: bool
    permissions: tuple[str, ...]
    summary: str


ROLES: tuple[Role, ...] = (
    Role("Platform admin", True, (EVERY_PERMISSION,), "everything, on every client; manages staff and grants"),
    Role(
        "Client manager",
        False,
        _CLIENT_MANAGER,
        "clients, applications, API keys and invitations of their clients; no reveal, rotation or erasure",
    ),
    Role(
        "Support",
        False,
        _SUPPORT,
        "read-only on their clients; checks a token, resends an invitation",
    ),
    Role(
        "Auditor",
        True,
        (*_VIEW_EVERYTHING, "audit.export_auditevent", ALL_CLIENTS_PERMISSION),
        "read-only everything; exports and verifies the audit trail",
    ),
    Role(
        "Security officer",
        True,
        _SECURITY_OFFICER,
        "the vault: reveals with a reason, rotates keys, signing keys, erasure",
    ),
)
ROLE_NAMES = tuple(role.name for role in ROLES)


def role_named(name: str) -> Role:
    for role in ROLES:
        if role.name.lower() == (name or "").strip().lower():
            return role
    raise KeyError(name)


def converge(apps, using: str) -> None:
    """Make each role's group hold exactly its declared permissions (creating the group when missing).

    Declared by `app_label.codename`, so a renamed permission follows its new codename at the next
    `migrate`. Permissions Django has not created yet are created first: a data migration runs
    before the post_migrate signal that normally creates them.
    """
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps, using=using)
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    every = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in permission_model.objects.using(using).values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    with transaction.atomic(using=using):
        for role in ROLES:
            group, _ = group_model.objects.using(using).get_or_create(name=role.name)
            if role.permissions == (EVERY_PERMISSION,):
                wanted = set(every.values())
            else:
                missing = [name for name in role.permissions if name not in every]
                if missing:
                    raise LookupError(f"role {role.name}: no permission {', '.join(missing)}")
                wanted = {every[name] for name in role.permissions}
            # The through table with `using`: the related manager would follow the router to the console alias.
            links = group_model.permissions.through.objects.using(using).filter(group_id=group.pk)
            links.exclude(permission_id__in=wanted).delete()
            have = set(links.values_list("permission_id", flat=True))
            links.model.objects.using(using).bulk_create(
                [links.model(group_id=group.pk, permission_id=pk) for pk in sorted(wanted - have)]
            )


def on_post_migrate(sender, using=DEFAULT_DB_ALIAS, apps=None, **kwargs):
    if sender.name == "staff" and using == DEFAULT_DB_ALIAS and apps is not None:
        converge(apps, using)


def matrix_row(role: Role) -> str:
    """The role's row of the table in docs/staff-access.md (a test checks the document holds every row)."""
    clients = "every client" if role.all_clients else "granted clients"
    permissions = "all" if role.permissions == (EVERY_PERMISSION,) else ", ".join(f"`{p}`" for p in role.permissions)
    return f"| {role.name} | {clients} | {role.summary} | {permissions} |"
