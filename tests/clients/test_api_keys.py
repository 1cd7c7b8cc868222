"""API keys: shown once, stored hashed, revocable, and linked to applications only inside one client."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from clients import apikeys, services
from clients.models import ApiKey
from config.errors import Conflict, InvalidInput, NotFound, Refused
from tests.conftest import connect_as

SCOPES = [ApiKey.Scope.CONFIGURATION_READ]


@pytest.fixture
def two_clients_with_apps(make_client):
    acme, globex = make_client("acme"), make_client("globex")
    return (
        acme,
        globex,
        services.configure_application(actor=None, client=acme, app_code="offboarding"),
        services.configure_application(actor=None, client=globex, app_code="offboarding"),
    )


def test_the_composite_foreign_key_refuses_a_cross_tenant_link(committed, two_clients_with_apps):
    acme, _globex, acme_app, globex_app = two_clients_with_apps
    api_key, _ = services.create_api_key(actor=None, client=acme, name="k", scopes=SCOPES, application=acme_app)
    # Straight to the database as the staff role, past every Django check: the key itself refuses.
    with connect_as(settings.CONSOLE_DB_ALIAS) as connection:
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="apikey_application_same_client"):
            connection.execute(
                "UPDATE clients_apikey SET application_id = %s WHERE id = %s", [globex_app.pk, api_key.pk]
            )
        connection.rollback()
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="apikey_application_same_client"):
            connection.execute(
                "INSERT INTO clients_apikey (id, client_id, application_id, name, prefix, secret_hash, scopes,"
                " created_at) VALUES (gen_random_uuid(), %s, %s, 'x', 'p', 'h', '{configuration:read}', now())",
                [acme.pk, globex_app.pk],
            )
        connection.rollback()
        # The same-client link is accepted.
        connection.execute("UPDATE clients_apikey SET application_id = NULL WHERE id = %s", [api_key.pk])
        connection.execute("UPDATE clients_apikey SET application_id = %s WHERE id = %s", [acme_app.pk, api_key.pk])
        connection.commit()


@pytest.mark.django_db(databases="__all__")
def test_the_service_names_a_foreign_application_as_invalid_input(two_clients_with_apps):
    acme, _globex, _acme_app, globex_app = two_clients_with_apps
    with pytest.raises(InvalidInput) as raised:
        services.create_api_key(actor=None, client=acme, name="k", scopes=SCOPES, application=globex_app)
    assert "does not belong to the client" in str(raised.value.fields["application"])
    with pytest.raises(NotFound, match="Client acme has no application 'nope'"):
        services.create_api_key(actor=None, client=acme, name="k", scopes=SCOPES, application="nope")
    assert not ApiKey.objects.exists()


@pytest.mark.django_db(databases="__all__")
def test_the_key_is_returned_once_and_only_its_hash_is_stored(make_client):
    acme = make_client("acme")
    api_key, full_key = services.create_api_key(
        actor=None, client=acme, name=" ci ", scopes=["invitations:redeem", "configuration:read", "configuration:read"]
    )
    prefix, secret = apikeys.parse(full_key)
    assert prefix == api_key.prefix and api_key.name == "ci"
    assert api_key.scopes == ["configuration:read", "invitations:redeem"]
    stored = ApiKey.objects.get()
    assert stored.secret_hash != secret and apikeys.secret_matches(secret, stored.secret_hash)
    assert not apikeys.secret_matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), stored.secret_hash)
    assert apikeys.parse("flk_short_x") is None
    event = AuditEvent.objects.get(action="api_key.created")
    assert secret not in json.dumps(event.changes) and event.changes["prefix"]["new"] == prefix


@pytest.mark.django_db(databases="__all__")
def test_bad_api_key_input_is_refused_and_changes_nothing(make_client):
    acme = make_client("acme")
    with pytest.raises(InvalidInput, match="scopes"):
        services.create_api_key(actor=None, client=acme, name="k", scopes=[])
    with pytest.raises(InvalidInput, match="scopes"):
        services.create_api_key(actor=None, client=acme, name="k", scopes=["root"])
    with pytest.raises(InvalidInput, match="future"):
        services.create_api_key(
            actor=None, client=acme, name="k", scopes=SCOPES, expires_at=timezone.now() - timedelta(days=1)
        )
    services.create_api_key(actor=None, client=acme, name="k", scopes=SCOPES)
    with pytest.raises((InvalidInput, Conflict), match=r"already exists|already has an API key named 'k'"):
        services.create_api_key(actor=None, client=acme, name="k", scopes=SCOPES)
    services.deactivate_client(actor=None, client=acme)
    with pytest.raises(Refused, match="active clients only"):
        services.create_api_key(actor=None, client=acme, name="other", scopes=SCOPES)
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db(databases="__all__")
def test_revoking_is_immediate_idempotent_and_audited(make_client):
    acme = make_client("acme")
    api_key, _ = services.create_api_key(actor=None, client=acme, name="k", scopes=SCOPES)
    assert api_key.is_usable(timezone.now())
    services.revoke_api_key(actor=None, api_key=api_key)
    revoked = services.revoke_api_key(actor=None, api_key=api_key)
    assert not revoked.is_usable(timezone.now())
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=str(api_key.pk)).count() == 1


def test_the_commands_issue_and_revoke_keys(manage, make_client):
    acme = make_client("acme")
    services.configure_application(actor=None, client=acme, app_code="offboarding")
    run = manage(
        "create_api_key", "acme", "--name", "prod", "--application", "offboarding",
        "--scope", "configuration:read", "--expires-in-days", "30", "--json",
    )  # fmt: skip
    assert run.code == 0, run
    assert apikeys.parse(run.json["key"]) and run.json["api_key"]["application"] == "offboarding"
    prefix = run.json["api_key"]["prefix"]
    zero_days = ["--scope", "configuration:read", "--expires-in-days", "0"]
    assert manage("create_api_key", "acme", "--name", "x", *zero_days).code == 2
    assert manage("create_api_key", "acme", "--name", "x", "--scope", "everything").code == 2
    missing = manage("revoke_api_key", "acme", "000000000000")
    assert missing.code == 1 and "Client acme has no API key '000000000000'." in missing.err
    assert manage("revoke_api_key", "acme", prefix).code == 0
    assert manage("revoke_api_key", "acme", prefix, "--json").json["api_key"]["revoked_at"]
    status = manage("client_status", "acme")
    assert f"{prefix}  revoked" in status.out
    assert run.json["key"] not in status.out


@pytest.mark.django_db(databases="__all__")
def test_the_admin_shows_the_key_once_and_revokes_with_confirmation(client, make_client):
    client.force_login(User.objects.create_superuser("staff", "staff@thepia.net", "unused"))
    acme = make_client("acme")
    response = client.post(
        reverse("admin:clients_apikey_add"),
        {"client": acme.pk, "name": "prod", "scopes": ["configuration:read", "invitations:redeem"]},
    )
    assert response.status_code == 200, response.content.decode()[:3000]
    api_key = ApiKey.objects.get()
    page = response.content.decode()
    assert f"flk_{api_key.prefix}_" in page and "shown only on this page" in page
    assert "no-store" in response["Cache-Control"]
    assert "flk_" not in client.get(reverse("admin:clients_apikey_change", args=[api_key.pk])).content.decode()

    url = reverse("admin:clients_apikey_changelist")
    form = {"action": "revoke_selected", "_selected_action": [str(api_key.pk)]}
    assert "Revoke 1 API key?" in client.post(url, form).content.decode()
    assert ApiKey.objects.get().revoked_at is None
    client.post(url, {**form, "confirmed": "yes"})
    assert ApiKey.objects.get().revoked_at is not None
    assert client.get(url + "?state=revoked").context["cl"].result_count == 1
    assert client.get(url + "?state=usable").context["cl"].result_count == 0
