"""Services: the one path for every write. Validation, limits, refusals, and an audit event per change."""

from __future__ import annotations

import importlib.util
import inspect

import pytest
from django.conf import settings
from django.db import connections

from audit.models import AuditEvent
from clients import services
from clients.models import Application, Client
from config.errors import FlowsError, InvalidInput, NotFound, Refused
from vault import keyring
from vault import services as vault_services

pytestmark = pytest.mark.django_db(databases="__all__")


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("code", "A", "code"),
        ("code", "has space", "code"),
        ("code", "x" * 51, "code"),
        ("domain", "not a host", "domain"),
        ("domain", "-bad-.example", "domain"),
        ("region", "MARS", "region"),
        ("legal_name", "   ", "legal_name"),
    ],
)
def test_create_client_rejects_bad_input_and_writes_nothing(field, value, message):
    arguments = {"code": "acme", "legal_name": "Acme", "domain": "acme.thepia.net", "region": "EU", "tier": "pro"}
    with pytest.raises(InvalidInput) as raised:
        services.create_client(actor=None, **{**arguments, field: value})
    assert message in raised.value.fields, raised.value.as_dict()
    assert not Client.objects.exists()
    assert not AuditEvent.objects.exists()


def test_create_client_normalises_and_records_the_event(make_client):
    client = services.create_client(
        actor=None, code=" ACME ", legal_name=" Acme Corporation ", domain="Acme.Thepia.NET.", region="eu", tier="pro"
    )
    assert (client.code, client.legal_name, client.domain, client.region, client.tier_id) == (
        "acme",
        "Acme Corporation",
        "acme.thepia.net",
        "EU",
        "pro",
    )
    [event] = events("client.created")
    assert event.client_id == client.pk and event.client_code == "acme" and event.target_id == str(client.pk)
    assert event.changes["tier"] == {"old": None, "new": "pro"}
    assert event.actor_type == "system"


def test_an_unknown_tier_names_the_choices():
    with pytest.raises(InvalidInput, match=r"Choose one of: .*enterprise"):
        services.create_client(actor=None, code="acme", legal_name="A", domain="a.example", region="EU", tier="gold")


def test_duplicate_code_or_domain_is_a_clear_conflict(make_client):
    make_client("acme")
    with pytest.raises(FlowsError, match="already exists"):
        services.create_client(actor=None, code="acme", legal_name="X", domain="other.example", region="EU")
    with pytest.raises(FlowsError, match="already exists"):
        services.create_client(actor=None, code="other", legal_name="X", domain="acme.thepia.net", region="EU")
    assert Client.objects.count() == 1


def test_update_client_records_only_what_changed(make_client):
    acme = make_client("acme")
    services.update_client(actor=None, client=acme, legal_name="Acme Ltd")  # unchanged
    assert events("client.updated") == []
    services.update_client(actor=None, client=acme, legal_name="Acme Holding", region="US")
    [event] = events("client.updated")
    assert event.changes == {
        "legal_name": {"old": "Acme Ltd", "new": "Acme Holding"},
        "region": {"old": "EU", "new": "US"},
    }


def test_a_downgrade_the_usage_does_not_fit_is_refused_with_the_reasons(make_client):
    acme = make_client("acme", tier="pro")
    services.configure_application(actor=None, client=acme, app_code="onboarding", features=["sso"])
    services.configure_application(actor=None, client=acme, app_code="offboarding")
    with pytest.raises(Refused) as raised:
        services.update_client(actor=None, client=acme, tier="free")
    assert raised.value.code == "tier_does_not_fit"
    assert "2 applications, the tier allows 1" in raised.value.message
    assert "sso" in raised.value.message
    acme.refresh_from_db()
    assert acme.tier_id == "pro"
    assert events("client.updated") == []


def test_an_upgrade_and_a_fitting_downgrade_are_applied(make_client):
    acme = make_client("acme", tier="free")
    services.update_client(actor=None, client=acme, tier="enterprise")
    services.update_client(actor=None, client=acme, tier="pro")
    assert [e.changes["tier"] for e in events("client.updated")] == [
        {"old": "free", "new": "enterprise"},
        {"old": "enterprise", "new": "pro"},
    ]


def test_deactivate_and_reactivate_are_idempotent_and_audited(make_client):
    acme = make_client("acme")
    services.deactivate_client(actor=None, client=acme, reason="contract ended")
    services.deactivate_client(actor=None, client=acme, reason="again")
    acme.refresh_from_db()
    assert acme.status == Client.Status.DEACTIVATED and acme.deactivated_at is not None
    [event] = events("client.deactivated")
    assert event.changes["reason"] == "contract ended"
    with pytest.raises(Refused, match="deactivated"):
        services.configure_application(actor=None, client=acme, app_code="onboarding")
    services.reactivate_client(actor=None, client=acme)
    services.reactivate_client(actor=None, client=acme)
    acme.refresh_from_db()
    assert acme.status == Client.Status.ACTIVE and acme.deactivated_at is None
    assert len(events("client.reactivated")) == 1


def test_the_tier_limits_the_number_of_applications(make_client):
    acme = make_client("acme", tier="free")
    services.configure_application(actor=None, client=acme, app_code="onboarding")
    with pytest.raises(Refused) as raised:
        services.configure_application(actor=None, client=acme, app_code="offboarding")
    assert raised.value.code == "application_limit"
    assert Application.objects.filter(client=acme).count() == 1
    # Updating an existing application is not a new one.
    services.configure_application(actor=None, client=acme, app_code="onboarding", name="Welcome")


def test_features_must_be_in_the_tier(make_client):
    acme = make_client("acme", tier="free")
    with pytest.raises(InvalidInput) as raised:
        services.configure_application(actor=None, client=acme, app_code="onboarding", features=["sso", "invitations"])
    assert raised.value.code == "feature_not_in_tier" and "sso" in raised.value.message
    assert not Application.objects.exists()


@pytest.mark.parametrize(
    ("configuration", "complaint"),
    [
        ({"colour": "red"}, "colour"),
        ({"branding": {"primary_color": "red"}}, "primary_color"),
        ({"branding": {"logo_url": "http://insecure.example/logo.png"}}, "logo_url"),
        ({"notifications": {"reminder_days": [0]}}, "reminder_days"),
        ({"locale": 7}, "locale"),
        ({"workflow": {"steps": "not a list"}}, "steps"),
        (["not", "an", "object"], "object"),
    ],
)
def test_configuration_must_match_the_documented_shape(make_client, configuration, complaint):
    acme = make_client("acme")
    with pytest.raises(InvalidInput) as raised:
        services.configure_application(actor=None, client=acme, app_code="onboarding", configuration=configuration)
    assert raised.value.code == "invalid_configuration"
    assert complaint in raised.value.message
    assert not Application.objects.exists()


def test_configure_application_creates_then_updates_with_a_diff(make_client):
    acme = make_client("acme")
    configuration = {"locale": "da-DK", "branding": {"display_name": "Acme", "primary_color": "#112233"}}
    app = services.configure_application(
        actor=None, client=acme, app_code="Onboarding", configuration=configuration, features=["sso", "sso"]
    )
    assert (app.app_code, app.name, app.features) == ("onboarding", "Onboarding", ["sso"])
    services.configure_application(actor=None, client=acme, app_code="onboarding", status="disabled")
    services.configure_application(actor=None, client=acme, app_code="onboarding", status="disabled")  # no change
    [created] = events("application.created")
    [updated] = events("application.updated")
    assert created.changes["configuration"]["new"] == configuration
    assert updated.changes == {"status": {"old": "enabled", "new": "disabled"}}
    assert updated.target_label and updated.client_id == acme.pk


def test_lookups_say_what_was_not_found():
    from clients.selectors import get_client

    with pytest.raises(NotFound, match="No client with code or id 'nope'"):
        get_client("nope")


MALFORMED_REFERENCES = ["", "  ", "a" * 10_000, "acme\x00", "ac me", "ac\nme", "\u202eemca", "'; DROP TABLE x; --"]


@pytest.mark.parametrize("reference", MALFORMED_REFERENCES)
def test_a_malformed_reference_names_nothing_and_is_answered_without_a_query(
    make_client, django_assert_num_queries, reference
):
    from clients.selectors import get_api_key, get_application, get_client, get_tier
    from invitations.selectors import get_invitation
    from vault.selectors import get_secret

    acme = make_client("acme")
    lookups = [
        lambda: get_client(reference),
        lambda: get_application(acme, reference),
        lambda: get_api_key(acme, reference),
        lambda: get_secret(acme, reference),
        lambda: get_invitation(reference),
    ]
    for lookup in lookups:
        with (
            django_assert_num_queries(0, connection=connections[settings.CONSOLE_DB_ALIAS]),
            pytest.raises(NotFound) as raised,
        ):
            lookup()
        assert len(raised.value.message) < 200, raised.value.message  # an excerpt, not the 10,000 characters
    with pytest.raises(InvalidInput, match="Unknown tier"):
        get_tier(reference)


def test_a_client_code_of_the_wrong_shape_says_what_a_code_is():
    from clients.selectors import get_client

    with pytest.raises(NotFound, match="a code is 2 to 50 letters, digits or hyphens"):
        get_client("x" * 10_000)


CONTROL_CHARACTER_WRITES = {
    "create_client legal_name": lambda acme, secret: services.create_client(
        actor=None, code="globex", legal_name="Globex\nInc", domain="globex.example", region="EU"
    ),
    "update_client legal_name": lambda acme, secret: services.update_client(
        actor=None, client=acme, legal_name="Acme \u202eLtd"
    ),
    "deactivate_client reason": lambda acme, secret: services.deactivate_client(
        actor=None, client=acme, reason="ended\x1b[2J"
    ),
    "configure_application name": lambda acme, secret: services.configure_application(
        actor=None, client=acme, app_code="offboarding", name="Off\tboarding"
    ),
    "create_api_key name": lambda acme, secret: services.create_api_key(
        actor=None, client=acme, name="prod\x00", scopes=["configuration:read"]
    ),
    "set_secret description": lambda acme, secret: vault_services.set_secret(
        actor=None, client=acme, provider="slack", secret_type="api_key", value=None, description="a\nb"
    ),
    "set_secret tags": lambda acme, secret: vault_services.set_secret(
        actor=None, client=acme, provider="stripe", secret_type="api_key", value="sk", tags=["ok", "bad\u2066"]
    ),
    "reveal_secret reason": lambda acme, secret: vault_services.reveal_secret(
        actor=None, secret=secret, reason="ticket 42\r\nFAKE LOG LINE"
    ),
}


@pytest.mark.parametrize("write", CONTROL_CHARACTER_WRITES)
def test_control_characters_in_a_name_label_or_reason_are_refused_and_change_nothing(make_client, write):
    acme = make_client("acme", tier="pro")
    services.configure_application(actor=None, client=acme, app_code="onboarding")
    secret = vault_services.set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="x")
    before = (AuditEvent.objects.count(), list(Client.objects.values()), list(Application.objects.values()))
    with pytest.raises(InvalidInput) as raised:
        CONTROL_CHARACTER_WRITES[write](acme, secret)
    assert raised.value.code == "control_characters"
    assert write.split()[-1] in raised.value.fields
    assert (AuditEvent.objects.count(), list(Client.objects.values()), list(Application.objects.values())) == before


def test_names_in_any_script_are_welcome(make_client):
    acme = make_client("acme")
    services.update_client(actor=None, client=acme, legal_name="Société Générale — 日本支社 (ﺍﻟﻌﺮﺑﻴﺔ)")
    acme.refresh_from_db()
    assert acme.legal_name == "Société Générale — 日本支社 (ﺍﻟﻌﺮﺑﻴﺔ)"


def test_a_configuration_nested_thousands_deep_is_refused_not_a_recursion_error(make_client):
    deep: dict = {}
    for _ in range(5000):
        deep = {"branding": deep}
    with pytest.raises(InvalidInput, match="nested deeper than 8 levels"):
        services.configure_application(
            actor=None, client=make_client("acme"), app_code="onboarding", configuration=deep
        )
    assert not Application.objects.exists()


SERVICE_MODULES = (services, vault_services)


def _exercise(make_client, settings) -> dict:
    """Each public service, called once on fresh data, with the audit action it must record."""
    acme = make_client("acme", tier="pro")
    api_key, _ = services.create_api_key(actor=None, client=acme, name="seed", scopes=["configuration:read"])
    secret = vault_services.set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value="xoxb")

    def rotate_master():
        settings.FLOWS_MASTER_KEYS = f"{keyring.generate('next')},{settings.FLOWS_MASTER_KEYS}"
        return vault_services.rotate_master_key(actor=None)

    def retire_unused():
        settings.FLOWS_MASTER_KEYS = f"{settings.FLOWS_MASTER_KEYS},{keyring.generate('never-used')}"
        return vault_services.retire_master_key(actor=None, key_id="never-used")

    def rewrap():
        vault_services.create_data_key(actor=None, client=acme)
        return vault_services.rewrap(actor=None, client=acme)

    return {
        "clients.services.create_client": (lambda: make_client("globex"), "client.created"),
        "clients.services.update_client": (
            lambda: services.update_client(actor=None, client=acme, legal_name="New"),
            "client.updated",
        ),
        "clients.services.deactivate_client": (
            lambda: services.deactivate_client(actor=None, client=acme),
            "client.deactivated",
        ),
        "clients.services.reactivate_client": (
            lambda: (
                services.deactivate_client(actor=None, client=acme),
                services.reactivate_client(actor=None, client=acme),
            ),
            "client.reactivated",
        ),
        "clients.services.configure_application": (
            lambda: services.configure_application(actor=None, client=acme, app_code="onboarding"),
            "application.created",
        ),
        "clients.services.create_api_key": (
            lambda: services.create_api_key(actor=None, client=acme, name="k", scopes=["configuration:read"]),
            "api_key.created",
        ),
        "clients.services.set_api_key_rate_limit": (
            lambda: services.set_api_key_rate_limit(actor=None, api_key=api_key, rate_limit=30),
            "api_key.rate_limit_changed",
        ),
        "clients.services.revoke_api_key": (
            lambda: services.revoke_api_key(actor=None, api_key=api_key),
            "api_key.revoked",
        ),
        "clients.services.erase_client": (
            lambda: services.erase_client(actor=None, client=make_client("initech"), confirm="initech"),
            "client.erased",
        ),
        "vault.services.create_data_key": (
            lambda: vault_services.create_data_key(actor=None, client=acme),
            "data_key.created",
        ),
        "vault.services.set_secret": (
            lambda: vault_services.set_secret(
                actor=None, client=acme, provider="stripe", secret_type="api_key", value="sk_live"
            ),
            "secret.created",
        ),
        "vault.services.rewrap": (rewrap, "secret.rewrapped"),
        "vault.services.rotate_master_key": (rotate_master, "vault.master_key_rotated"),
        "vault.services.retire_master_key": (retire_unused, "vault.master_key_retired"),
        "vault.services.use_secret": (lambda: vault_services.use_secret(actor=None, secret=secret), "secret.used"),
        "vault.services.reveal_secret": (
            lambda: vault_services.reveal_secret(actor=None, secret=secret, reason="support ticket 42"),
            "secret.revealed",
        ),
        "vault.services.deactivate_secret": (
            lambda: vault_services.deactivate_secret(actor=None, secret=secret),
            "secret.deactivated",
        ),
        "vault.services.delete_secret": (
            lambda: vault_services.delete_secret(actor=None, secret=secret),
            "secret.deleted",
        ),
        "vault.services.rotate_signing_key": (
            lambda: vault_services.rotate_signing_key(actor=None),
            "signing_key.rotated",
        ),
    }


def test_every_write_layer_has_an_audit_ratchet():
    """A new app's services.py must join a ratchet: here, tests/invitations (committed data) or tests/staff."""
    from django.apps import apps

    modules = {
        f"{config.name}.services" for config in apps.get_app_configs() if config.path.startswith(str(settings.BASE_DIR))
    }
    covered = {module.__name__ for module in SERVICE_MODULES} | {"invitations.services", "staff.services"}
    helpers = {"audit.services"}  # record() itself
    existing = {name for name in modules if importlib.util.find_spec(name) is not None}
    assert existing - helpers == covered


def _takes_actor(function) -> bool:
    """The services' convention, `*, actor`: helpers without it (vault.services.add_data_key_version) record nothing
    themselves, and the service calling them records the operation's one event."""
    actor = inspect.signature(function).parameters.get("actor")
    return actor is not None and actor.kind is inspect.Parameter.KEYWORD_ONLY


def test_every_public_service_writes_its_audit_event(make_client, settings):
    """Ratchet: a new public service fails here until it is exercised and its event asserted."""
    cases = _exercise(make_client, settings)
    public = {
        f"{module.__name__}.{name}"
        for module in SERVICE_MODULES
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == module.__name__ and not name.startswith("_") and _takes_actor(function)
    }
    assert public == set(cases), f"exercise and assert the audit event of: {sorted(public ^ set(cases))}"
    for name, (call, action) in cases.items():
        before = AuditEvent.objects.filter(action=action).count()
        call()
        assert AuditEvent.objects.filter(action=action).count() == before + 1, name
