"""The vault in the staff console: the value is write-only, reveal is separate, permitted, reasoned and logged."""

from __future__ import annotations

import base64
import logging
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from staff.elevation import SESSION_KEY
from tests.clients.test_admin import changelist_queries
from vault import services
from vault.models import DataKey, Secret, SecretAccess

pytestmark = pytest.mark.django_db(databases="__all__")

VALUE = "sk_live_51H-admin-test-value-do-not-show"


@pytest.fixture
def staff(client):
    """A superuser who re-authenticated a moment ago (reveal and rotation need it: tests/staff/test_sign_in.py)."""
    user = User.objects.create_superuser("staff", "staff@thepia.net", "not-used")
    client.force_login(user)
    session = client.session
    session[SESSION_KEY] = (timezone.now() + timedelta(minutes=5)).isoformat()
    session.save()
    return user


@pytest.fixture
def clerk(client):
    """Staff who may manage secrets of every client but not reveal them."""
    user = User.objects.create_user("clerk", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="vault").exclude(codename="reveal_secret"),
        Permission.objects.get(codename="access_all_clients"),
    )
    client.force_login(user)
    return user


def add_secret(client, acme, **extra):
    form = {"client": str(acme.pk), "provider": "stripe", "secret_type": "api_key", "name": "", "value": VALUE,
            "description": "billing", "tags": "payments", "expires_at_0": "", "expires_at_1": "", "is_active": "on",
            **extra}  # fmt: skip
    return client.post(reverse("admin:vault_secret_add"), form, follow=True)


def reveal(client, url: str, reason: str):
    """Open the reveal form (which issues its one-time nonce), then submit it."""
    nonce = client.get(url).context["nonce"]
    return client.post(url, {"reason": reason, "nonce": nonce})


def test_adding_and_editing_never_shows_the_value(client, staff, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    acme = make_client("acme")
    added = add_secret(client, acme)
    assert added.status_code == 200
    secret = Secret.objects.get()
    assert (
        secret.name == "stripe-api_key"
        and services.reveal_secret(actor=None, secret=secret, reason="test check") == VALUE.encode()
    )

    change_url = reverse("admin:vault_secret_change", args=[secret.pk])
    pages = [
        added,
        client.get(reverse("admin:vault_secret_changelist")),
        client.get(change_url),
        client.get(reverse("admin:vault_secretaccess_changelist")),
        client.get(reverse("admin:audit_auditevent_changelist")),
        client.get(reverse("admin:vault_secret_history", args=[secret.pk])),
    ]
    # Edit the description only: the stored value is kept.
    form = {"name": "stripe-api_key", "value": "", "description": "billing (EU)", "tags": "payments",
            "expires_at_0": "", "expires_at_1": "", "is_active": "on"}  # fmt: skip
    pages.append(client.post(change_url, form, follow=True))
    secret.refresh_from_db()
    assert secret.description == "billing (EU)" and secret.data_key_version == 1
    assert services.reveal_secret(actor=None, secret=secret, reason="test check") == VALUE.encode()
    for page in pages:
        assert page.status_code == 200
        assert VALUE not in page.content.decode()
    assert "set (data key v1)" in pages[2].content.decode()
    assert VALUE not in caplog.text


def test_a_new_secret_needs_a_value_and_a_duplicate_is_a_form_error(client, staff, make_client):
    acme = make_client("acme")
    empty = add_secret(client, acme, value="")
    assert "A new secret needs a value." in empty.content.decode()
    add_secret(client, acme)
    duplicate = add_secret(client, acme)
    assert "already exists" in duplicate.content.decode()
    assert Secret.objects.count() == 1


def test_reveal_asks_for_a_reason_shows_the_value_once_and_logs_it(client, staff, make_client):
    acme = make_client("acme")
    add_secret(client, acme)
    secret = Secret.objects.get()
    url = reverse("admin:vault_secret_reveal", args=[secret.pk])
    assert "Reveal the value" in client.get(reverse("admin:vault_secret_change", args=[secret.pk])).content.decode()

    asked = client.get(url)
    assert (
        asked.status_code == 200
        and VALUE not in asked.content.decode()
        and "Reason (required)" in asked.content.decode()
    )
    no_reason = reveal(client, url, "")
    assert VALUE not in no_reason.content.decode() and "Say why" in no_reason.content.decode()
    assert not SecretAccess.objects.filter(access_type="reveal").exists()

    shown = reveal(client, url, "Stripe dashboard migration")
    assert VALUE in shown.content.decode()
    assert "no-store" in shown["Cache-Control"]
    access = SecretAccess.objects.get(access_type="reveal")
    assert (access.actor_label, access.reason) == ("staff", "Stripe dashboard migration")
    assert AuditEvent.objects.get(action="secret.revealed").changes == {"reason": "Stripe dashboard migration"}


def test_a_binary_value_is_revealed_base64_encoded_with_a_note(client, staff, make_client):
    certificate = b"0\x82\x03\x1f\x00\xff\xfe\x80 DER bytes"
    acme = make_client("acme")
    secret = services.set_secret(actor=None, client=acme, provider="okta", secret_type="certificate", value=certificate)
    shown = reveal(client, reverse("admin:vault_secret_reveal", args=[secret.pk]), "SSO certificate check")
    assert shown.status_code == 200
    page = shown.content.decode()
    assert base64.b64encode(certificate).decode() in page
    assert f"binary ({len(certificate)} bytes)" in page and "base64-encoded" in page
    assert SecretAccess.objects.filter(access_type="reveal").count() == 1


def test_reloading_the_revealed_page_reveals_and_records_nothing_more(client, staff, make_client):
    acme = make_client("acme")
    secret = services.set_secret(actor=None, client=acme, provider="stripe", secret_type="api_key", value=VALUE)
    url = reverse("admin:vault_secret_reveal", args=[secret.pk])
    nonce = client.get(url).context["nonce"]
    form = {"reason": "Stripe dashboard migration", "nonce": nonce}
    assert VALUE in client.post(url, form).content.decode()

    reloaded = client.post(url, form)  # the browser's reload re-posts the same form
    assert reloaded.status_code == 302 and reloaded.url == url
    follow = client.get(reloaded.url)
    assert VALUE not in follow.content.decode() and "already used" in follow.content.decode()
    forged = client.post(url, {"reason": "Stripe dashboard migration", "nonce": "made-up"})
    no_nonce = client.post(url, {"reason": "Stripe dashboard migration"})
    assert forged.status_code == no_nonce.status_code == 302
    assert AuditEvent.objects.filter(action="secret.revealed").count() == 1
    assert SecretAccess.objects.filter(access_type="reveal").count() == 1
    # The session holds nonces only, never the value.
    assert VALUE not in str(dict(client.session.items()))

    # A nonce belongs to one secret's form.
    other = services.set_secret(actor=None, client=acme, provider="slack", secret_type="api_key", value=VALUE)
    other_nonce = client.get(reverse("admin:vault_secret_reveal", args=[other.pk])).context["nonce"]
    assert client.post(url, {"reason": "Stripe dashboard migration", "nonce": other_nonce}).status_code == 302
    assert AuditEvent.objects.filter(action="secret.revealed").count() == 1


def test_staff_without_the_reveal_permission_cannot_reveal(client, clerk, make_client):
    acme = make_client("acme")
    secret = services.set_secret(actor=None, client=acme, provider="stripe", secret_type="api_key", value=VALUE)
    url = reverse("admin:vault_secret_reveal", args=[secret.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"reason": "I am curious about it"}).status_code == 403
    page = client.get(reverse("admin:vault_secret_change", args=[secret.pk])).content.decode()
    assert "Reveal the value" not in page and VALUE not in page
    assert not SecretAccess.objects.filter(access_type="reveal").exists()


def test_deleting_goes_through_the_service_after_confirmation(client, staff, make_client):
    acme = make_client("acme")
    secret = services.set_secret(actor=None, client=acme, provider="stripe", secret_type="api_key", value=VALUE)
    url = reverse("admin:vault_secret_delete", args=[secret.pk])
    assert "Are you sure" in client.get(url).content.decode()
    client.post(url, {"post": "yes"})
    assert not Secret.objects.exists()
    assert SecretAccess.objects.filter(access_type="delete", actor_label="staff").exists()
    assert AuditEvent.objects.filter(action="secret.deleted").exists()


def test_rotating_a_clients_data_key_from_the_client_list(client, staff, make_client):
    acme = make_client("acme")
    url = reverse("admin:clients_client_changelist")
    form = {"action": "rotate_the_data_key_of_selected", "_selected_action": [str(acme.pk)]}
    assert "Rotate the data key of 1 client?" in client.post(url, form).content.decode()
    done = client.post(url, {**form, "confirmed": "yes"}, follow=True)
    assert "Rotated the data key of 1 client." in done.content.decode()
    assert DataKey.objects.get(client=acme, status="active").version == 2


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:vault_secret_changelist",
        "admin:vault_secretaccess_changelist",
        "admin:vault_datakey_changelist",
        "admin:vault_signingkey_changelist",
    ],
)
def test_vault_changelist_queries_do_not_grow_with_rows(client, staff, make_client, url_name):
    def populate(codes):
        for code in codes:
            owner = make_client(code)
            for provider in ("slack", "stripe"):
                secret = services.set_secret(
                    actor=None, client=owner, provider=provider, secret_type="api_key", value="v"
                )
                services.use_secret(actor=None, secret=secret)
            services.rotate_signing_key(actor=None)

    populate(["acme", "globex"])
    few = changelist_queries(client, reverse(url_name))
    populate(["initech", "umbrella", "hooli", "stark"])
    assert changelist_queries(client, reverse(url_name)) == few
