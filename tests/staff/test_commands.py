"""The staff access commands: grant, revoke, show, create (with a one-time password link), all audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client as Browser

from audit.models import AuditEvent
from staff import services


@pytest.fixture
def acme(manage, make_client):
    make_client("globex")
    return make_client("acme")


def test_create_staff_user_prints_a_one_time_link_that_sets_the_password(manage, acme):
    run = manage(
        "create_staff_user", "sam", "--email", "sam@thepia.net", "--role", "support", "--client", "acme", "--json"
    )
    assert run.code == 0, run.err
    assert run.json["roles"] == ["Support"] and run.json["clients"] == ["acme"]
    sam = User.objects.get(username="sam")
    assert sam.is_staff and not sam.has_usable_password()
    link = run.json["password_set_link"].removeprefix("http://127.0.0.1:8000")
    browser = Browser()
    form_url = browser.get(link).url  # Django swaps the token for a session marker
    response = browser.post(
        form_url, {"new_password1": "Corr3ct-horse-battery", "new_password2": "Corr3ct-horse-battery"}
    )
    assert response.status_code == 302
    assert browser.get(link, follow=True).context["validlink"] is False  # used once, then dead
    actions = list(AuditEvent.objects.filter(target_id=str(sam.pk)).values_list("action", "actor_label"))
    created_by = dict(actions)["staff.user_created"]
    assert created_by.startswith("manage.py create_staff_user (")
    assert {action for action, _ in actions} >= {
        "staff.user_created",
        "staff.client_access_granted",
        "staff.password_set",  # found by the review: setting it through the link was not recorded
    }
    assert ("staff.password_set", "sam") in actions


def test_grant_show_and_revoke(manage, acme):
    services.create_staff_user(actor=None, username="sam", email="sam@thepia.net", role="Support")
    assert manage("grant_client_access", "sam", "acme", "--role", "Client manager").code == 0
    shown = manage("staff_access", "sam", "--json").json
    assert shown["clients"] == ["acme"] and shown["roles"] == ["Client manager", "Support"]
    assert manage("staff_access", "--client", "acme", "--json").json["users"] == ["sam"]
    assert "already had" in manage("grant_client_access", "sam", "acme").out
    run = manage("revoke_client_access", "sam", "acme", "--json")
    assert run.json["changed"] is True and run.json["clients"] == []
    actions = AuditEvent.objects.filter(client_id=acme.pk, action__startswith="staff.").values_list("action", flat=True)
    assert sorted(actions) == ["staff.client_access_granted", "staff.client_access_revoked"]


def test_wrong_names_are_refused_with_exit_1(manage, acme):
    assert manage("grant_client_access", "nobody", "acme").code == 1
    assert manage("create_staff_user", "x", "--email", "x@thepia.net", "--role", "Overlord").code == 1
    assert manage("create_staff_user", "x", "--email", "not-an-email", "--role", "Support").code == 1
    assert manage("staff_access").code == 2
    assert not User.objects.filter(username="x").exists()


def test_seed_demo_adds_one_user_per_role_in_development(manage, settings, monkeypatch):
    settings.DEBUG = True
    monkeypatch.setenv("DEV_ADMIN_PASSWORD", "Dev-only-password-7")
    first = manage("seed_demo", "--json")
    assert first.code == 0, first.err
    staff = {access["username"]: access for access in first.json["staff"]}
    assert staff["support"]["clients"] == ["acme"] and staff["support"]["roles"] == ["Support"]
    assert staff["client-manager"]["clients"] == ["acme", "globex"]
    assert staff["auditor"]["all_clients"] and not staff["support"]["all_clients"]
    assert User.objects.get(username="support").check_password("Dev-only-password-7")
    again = manage("seed_demo")
    assert again.code == 0 and "support" in again.out and User.objects.filter(username="support").count() == 1


def test_seed_demo_adds_no_staff_outside_development(manage, settings):
    settings.DEBUG = False
    assert manage("seed_demo", "--json").json["staff"] == []
    assert not User.objects.filter(username="support").exists()
