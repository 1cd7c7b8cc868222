"""Two clients with rows of every kind, and staff users of each role scoped to the first."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group, User

from clients import services as client_services
from clients.models import Client
from invitations.services import Invitee, issue_invitation
from staff import services
from vault.services import rotate_signing_key, set_secret


@dataclass
class Estate:
    acme: Client
    globex: Client
    markers: dict[str, list[str]]  # per client code: strings that identify its rows in a page


def _fill(client: Client) -> list[str]:
    application = client_services.configure_application(actor=None, client=client, app_code="onboarding")
    # An application code only this client has: list filters that enumerate values must not show it to others.
    client_services.configure_application(actor=None, client=client, app_code=f"{client.code}-payroll")
    api_key, _ = client_services.create_api_key(actor=None, client=client, name="prod", scopes=["configuration:read"])
    secret = set_secret(actor=None, client=client, provider="slack", secret_type="api_key", value="v" * 20)
    invitation, _ = issue_invitation(
        actor=None, client=client, application=application, invitee=Invitee("Ada", f"ada@{client.domain}")
    )
    return [client.code, client.domain, str(client.pk), str(application.pk), api_key.prefix, str(secret.pk),
            invitation.code, str(invitation.pk)]  # fmt: skip


@pytest.fixture
def estate(make_client) -> Estate:
    rotate_signing_key(actor=None)
    acme, globex = make_client("acme"), make_client("globex")
    return Estate(acme, globex, {"acme": _fill(acme), "globex": _fill(globex)})


@pytest.fixture
def staff_user():
    """A staff user of `role` granted `clients` (through the services, as the console does)."""

    def make(username: str, role: str, clients: list[Client] = ()) -> User:
        user = services.create_staff_user(actor=None, username=username, email=f"{username}@thepia.net", role=role)
        for client in clients:
            services.grant_client_access(actor=None, user=user, client=client)
        return User.objects.get(pk=user.pk)  # a fresh object: no permission cache from the set-up

    return make


@pytest.fixture
def role_group():
    return lambda name: Group.objects.get(name=name)
