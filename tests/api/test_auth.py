"""Authentication through the definer function: one 401 for every bad key, scopes, application binding, last_used_at."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from clients import services as client_services
from clients.models import ApiKey
from tests.api.conftest import Api

committed = pytest.mark.usefixtures("committed")


def _owner_sql(statement: str, params=()) -> None:
    """A change no service makes (an expiry in the past, a timestamp moved back), as the owner."""
    with connections["default"].cursor() as cursor:
        cursor.execute(statement, params)


@pytest.fixture
def bad_keys(world, make_key):
    """Each way a key can be wrong, with a good one of acme for comparison."""
    acme = world[0]
    good = make_key(acme)
    prefix = good.split("_")[1]
    wrong_secret = good[:-1] + ("A" if good[-1] != "A" else "B")
    revoked = make_key(acme, name="revoked")
    client_services.revoke_api_key(actor=None, api_key=ApiKey.objects.get(prefix=revoked.split("_")[1]))
    expired = make_key(acme, name="expired", expires_at=timezone.now() + timedelta(days=1))
    _owner_sql("UPDATE clients_apikey SET expires_at = now() - interval '1 second' WHERE prefix = %s",
               [expired.split("_")[1]])  # fmt: skip
    return good, {
        "missing": None,
        "empty bearer": "",
        "not bearer": ("Basic", good),
        "malformed": "flk_nothex_short",
        "unknown prefix": "flk_000000000000_" + good.split("_", 2)[2],
        "wrong secret": wrong_secret,
        "revoked": revoked,
        "expired": expired,
        "prefix only": f"flk_{prefix}_",
    }


def _call(api: Api, how):
    if how is None:
        return api.get("/client", key="")
    if isinstance(how, tuple):
        scheme, key = how
        return api.call("GET", "/client", key="", HTTP_AUTHORIZATION=f"{scheme} {key}")
    if how == "":
        return api.call("GET", "/client", key="", HTTP_AUTHORIZATION="Bearer ")
    return api.get("/client", key=how)


@committed
def test_every_bad_key_gets_the_byte_identical_401(bad_keys, caplog):
    good, bad = bad_keys
    api = Api()
    assert api.get("/client", key=good).status == 200
    answers = {name: _call(api, how) for name, how in bad.items()}
    assert {name: answer.status for name, answer in answers.items()} == dict.fromkeys(bad, 401)
    bodies = {answer.body for answer in answers.values()}
    assert len(bodies) == 1, "the 401 body must not tell the cases apart"
    assert {answer.headers["WWW-Authenticate"] for answer in answers.values()} == {'Bearer realm="flows"'}
    first = next(iter(answers.values()))
    assert first.headers["Content-Type"] == "application/problem+json"
    assert first.json["code"] == "unauthorized" and "RateLimit" not in first.headers
    secrets = [how for how in bad.values() if isinstance(how, str) and len(how) > 20] + [good]
    assert not any(secret.split("_", 2)[-1] in caplog.text for secret in secrets), "a key reached the log"


@pytest.mark.parametrize("change", ["suspended", "deactivated", "erased"])
@committed
def test_keys_of_an_inactive_or_erased_client_get_the_same_401(world, make_key, change):
    acme = world[0]
    key = make_key(acme)
    reference = Api().get("/client", key="flk_000000000000_" + "A" * 43)
    if change == "suspended":
        _owner_sql("UPDATE clients_client SET status = 'suspended' WHERE id = %s", [acme.pk])
    elif change == "deactivated":
        client_services.deactivate_client(actor=None, client=acme)
    else:
        client_services.erase_client(actor=None, client=acme, confirm="acme")
    answer = Api().get("/client", key=key)
    assert (answer.status, answer.body) == (401, reference.body)


@committed
def test_last_used_at_is_written_at_most_once_a_minute(world, make_key):
    key = make_key(world[0])
    prefix = key.split("_")[1]
    api = Api(key)
    assert ApiKey.objects.get(prefix=prefix).last_used_at is None
    api.get("/client")
    first = ApiKey.objects.get(prefix=prefix).last_used_at
    assert first is not None
    _owner_sql("UPDATE clients_apikey SET last_used_at = now() - interval '30 seconds' WHERE prefix = %s", [prefix])
    moved = ApiKey.objects.get(prefix=prefix).last_used_at
    api.get("/client")
    assert ApiKey.objects.get(prefix=prefix).last_used_at == moved, "younger than a minute: not written"
    _owner_sql("UPDATE clients_apikey SET last_used_at = now() - interval '2 minutes' WHERE prefix = %s", [prefix])
    api.get("/client")
    assert ApiKey.objects.get(prefix=prefix).last_used_at > moved


@committed
def test_a_missing_scope_is_403_before_the_body_is_read(world, make_key):
    api = Api(make_key(world[0], scopes=["invitations:read"]))
    assert api.get("/invitations").status == 200
    for method, path in (("GET", "/client"), ("GET", "/applications"), ("POST", "/invitations/redeem")):
        answer = api.call(method, path, raw=b"{not json" if method == "POST" else None)
        assert (answer.status, answer.json["code"]) == (403, "insufficient_scope"), path
        assert answer.headers["Content-Type"] == "application/problem+json"


@committed
def test_a_key_bound_to_an_application_sees_only_that_application(world, make_key, issue):
    acme, _, apps = world
    client_services.configure_application(actor=None, client=acme, app_code="offboarding")
    api = Api(make_key(acme, application=apps["acme"]))
    assert [a["app_code"] for a in api.get("/applications").json] == ["onboarding"]
    assert api.get("/applications/onboarding").status == 200
    sibling, missing = api.get("/applications/offboarding"), api.get("/applications/nowhere")
    assert sibling.status == missing.status == 404
    assert sibling.body.replace(b"offboarding", b"X") == missing.body.replace(b"nowhere", b"X")
    # An invitation to the other application: refused, and nothing changes.
    from invitations import services
    from invitations.models import Invitation
    from tests.invitations.conftest import ADA

    offboarding = acme.applications.get(app_code="offboarding")
    invitation, token = services.issue_invitation(actor=None, client=acme, application=offboarding, invitee=ADA)
    for path in ("/invitations/validate", "/invitations/redeem"):
        answer = api.post(path, {"token": token})
        assert (answer.status, answer.json["code"]) == (400, "wrong_application")
    assert Invitation.objects.get(pk=invitation.pk).used_count == 0
    _, own = issue()
    assert api.post("/invitations/redeem", {"token": own}).status == 200
    listed = api.get("/invitations").json["items"]
    assert {item["application"] for item in listed} == {"onboarding"}
