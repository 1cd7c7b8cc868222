"""Invitation fixtures: a client with an application and a published signing key."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clients import services as client_services
from invitations import services, tokens
from invitations.services import Invitee
from vault import services as vault_services

ADA = Invitee("Ada Lovelace", "ada.lovelace@acme.example", "ada1815@home.example")
GRACE = Invitee("Grace Hopper", "grace.hopper@acme.example", "")


@pytest.fixture
def world(make_client):
    """acme (pro tier: multi-use links) with onboarding, globex beside it, and an active signing key."""
    vault_services.rotate_signing_key(actor=None)
    tokens.public_keys.clear()
    acme, globex = make_client("acme", tier="pro"), make_client("globex", tier="pro")
    apps = {
        client.code: client_services.configure_application(actor=None, client=client, app_code="onboarding")
        for client in (acme, globex)
    }
    return acme, globex, apps


@pytest.fixture
def issue(world):
    acme, _, apps = world

    def issue(invitee=ADA, *, client=None, **options):
        client = client or acme
        options.setdefault("expires_in", timedelta(days=7))
        return services.issue_invitation(
            actor=None, client=client, application=apps[client.code], invitee=invitee, **options
        )

    return issue
