"""Per-client scoping in every corner of the console: a scoped user sees their clients' rows and nothing else."""

from __future__ import annotations

import contextlib

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse

from audit.models import AuditEvent
from clients.models import Client, Tier
from invitations import tokens
from invitations.models import Invitation
from invitations.services import Invitee, issue_invitation, revoke_invitation
from staff.models import ClientUserGrant
from staff.roles import ACCESS_PERMISSION
from staff.scoping import ClientScopedAdminMixin, client_column_of

pytestmark = pytest.mark.django_db(databases="__all__")


def admin_urls(estate) -> list[tuple[str, bool]]:
    """(url, shows globex) for every registered admin page: lists, add, change/history/delete, custom views."""
    urls = [(reverse("admin:index"), False)]
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        urls.append((reverse("admin:{}_{}_changelist".format(*info)), False))
        urls.append((reverse("admin:{}_{}_changelist".format(*info)) + "?q=o", False))
        with contextlib.suppress(NoReverseMatch):
            urls.append((reverse("admin:{}_{}_add".format(*info)), False))
        column = client_column_of(model)
        if column is None:
            continue
        field = "pk" if column == "pk" else "client"
        for client, hidden in ((estate.acme, False), (estate.globex, True)):
            row = model._default_manager.filter(**{field: client.pk}).first() if model is not AuditEvent else None
            row = row or (AuditEvent.objects.filter(client_id=client.pk).first() if model is AuditEvent else None)
            if row is None:
                continue
            for view in ("change", "history", "delete"):
                urls.append((reverse(f"admin:%s_%s_{view}" % info, args=[row.pk]), hidden))
            for pattern in model_admin.get_urls():
                name = getattr(pattern, "name", "") or ""
                if (
                    name.startswith("{}_{}_".format(*info))
                    and "<uuid:object_id>" in str(pattern.pattern)
                    and not any(name.endswith(suffix) for suffix in ("_change", "_history", "_delete"))
                ):
                    urls.append((reverse(f"admin:{name}", args=[row.pk]), hidden))
    urls.append((reverse("admin:invitations_invitation_check"), False))
    for app_label, model_name in (("clients", "application"), ("clients", "apikey"), ("vault", "secret")):
        urls.append((f"/admin/autocomplete/?app_label={app_label}&model_name={model_name}&field_name=client", False))
    return urls


@pytest.mark.parametrize("role", ["Support", "Client manager"])
def test_a_scoped_user_sees_nothing_of_another_client_on_any_admin_page(client, estate, staff_user, role):
    user = staff_user("scoped", role, [estate.acme])
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_auditevent", "view_secret"]))
    client.force_login(user)
    visited = 0
    for url, hidden in admin_urls(estate):
        response = client.get(url)
        if hidden:
            assert response.status_code == 404, url
        else:
            assert response.status_code in (200, 302, 403), (url, response.status_code)
        body = response.content.decode()
        for marker in estate.markers["globex"]:
            assert marker not in body, (url, marker)
        visited += 1
    assert visited > 40


def test_the_same_walk_as_a_superuser_does_see_the_other_client(client, estate, admin_user):
    """The walk's scan can fail: unscoped, globex's rows are on those pages."""
    client.force_login(admin_user)
    seen = "".join(client.get(url).content.decode() for url, _ in admin_urls(estate))
    assert all(marker in seen for marker in estate.markers["globex"][:3])


def test_dropdowns_and_actions_offer_only_granted_clients(client, estate, staff_user):
    user = staff_user("manager", "Client manager", [estate.acme])
    client.force_login(user)
    page = client.get(reverse("admin:invitations_invitation_add")).content.decode()
    assert str(estate.acme.pk) in page and str(estate.globex.pk) not in page
    response = client.post(
        reverse("admin:clients_apikey_add"),
        {"client": estate.globex.pk, "name": "sneaky", "scopes": ["configuration:read"]},
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    globex_key = estate.globex.api_keys.get()
    client.post(
        reverse("admin:clients_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [globex_key.pk], "confirmed": "yes"},
    )
    globex_key.refresh_from_db()
    assert globex_key.revoked_at is None


def test_audit_trail_shows_granted_clients_only_and_platform_events_to_platform_roles(client, estate, staff_user):
    scoped = staff_user("support", "Support", [estate.acme])
    scoped.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    auditor = staff_user("auditor", "Auditor")
    client.force_login(scoped)
    page = client.get(reverse("admin:audit_auditevent_changelist")).content.decode()
    assert "acme" in page and "globex" not in page and 'field-action">staff.user_created' not in page
    client.force_login(auditor)
    page = client.get(reverse("admin:audit_auditevent_changelist")).content.decode()
    assert "globex" in page and 'field-action">staff.user_created' in page


def test_tier_counts_only_visible_clients(client, estate, staff_user):
    user = staff_user("support", "Support", [estate.acme])
    client.force_login(user)
    page = client.get(reverse("admin:clients_tier_changelist")).content.decode()
    assert '<td class="field-client_count">1</td>' in page


def changelist_queries(client, url: str) -> int:
    client.get(url)
    with CaptureQueriesContext(connections[settings.CONSOLE_DB_ALIAS]) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize(
    "url_name", ["admin:clients_client_changelist", "admin:clients_application_changelist", "admin:index"]
)
def test_query_count_is_the_same_with_one_and_with_500_grants(client, estate, staff_user, url_name):
    user = staff_user("support", "Support", [estate.acme])
    client.force_login(user)
    one = changelist_queries(client, reverse(url_name))
    tier = Tier.objects.get(code="free")
    many = Client.objects.bulk_create(
        [Client(code=f"c{i:03}", legal_name="x", domain=f"c{i:03}.example", region="EU", tier=tier) for i in range(499)]
    )
    permission = Permission.objects.get(codename=ACCESS_PERMISSION.split(".")[1])
    ClientUserGrant.objects.bulk_create(
        [ClientUserGrant(user=user, permission=permission, content_object=c) for c in many]
    )
    assert changelist_queries(client, reverse(url_name)) == one


def test_every_admin_of_rows_of_a_client_uses_the_scoping_mixin():
    """Ratchet: a new ModelAdmin or inline over a model holding a client must be scoped."""
    admins = list(admin.site._registry.values())
    admins += [inline(model_admin.model, admin.site) for model_admin in admins for inline in model_admin.inlines]
    for model_admin in admins:
        if client_column_of(model_admin.model) is not None:
            assert isinstance(model_admin, ClientScopedAdminMixin), type(model_admin).__name__


def test_checking_a_token_of_a_hidden_client_answers_404(client, estate, staff_user):
    user = staff_user("support", "Support", [estate.acme])
    client.force_login(user)
    check = reverse("admin:invitations_invitation_check")
    for code, expected in (("acme", 200), ("globex", 404)):
        owner = getattr(estate, code)
        application = owner.applications.get(app_code="onboarding")
        _, token = issue_invitation(
            actor=None, client=owner, application=application, invitee=Invitee("Bo", f"bo@{owner.domain}")
        )
        response = client.post(check, {"token": token})
        assert response.status_code == expected, code
        assert "globex" not in response.content.decode()
        # Rejected past its signature (here: revoked), the verdicts would describe the invitation's state.
        invitation = Invitation.objects.get(token_hash=tokens.token_hash(token))
        revoke_invitation(actor=None, invitation=invitation, reason="checking the scoping of rejections")
        response = client.post(check, {"token": token})
        assert response.status_code == expected, code
        assert "globex" not in response.content.decode()
    # A token that fails before the database (not a token at all) says nothing of any client.
    assert client.post(check, {"token": "not-a-token"}).status_code == 200


def test_a_client_manager_who_creates_a_client_is_granted_it(client, staff_user):
    manager = staff_user("manager", "Client manager")
    client.force_login(manager)
    response = client.post(
        reverse("admin:clients_client_add"),
        {
            "code": "hooli",
            "legal_name": "Hooli",
            "domain": "hooli.thepia.net",
            "region": "EU",
            "tier": "free",
            "applications-TOTAL_FORMS": "0",
            "applications-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert response.redirect_chain and "hooli.thepia.net" in response.content.decode()  # listed: granted
    hooli = Client.objects.get(code="hooli")
    assert AuditEvent.objects.filter(
        action="staff.client_access_granted", client_id=hooli.pk, target_id=str(manager.pk)
    ).exists()
