"""Each endpoint's success path, 404 sameness across clients, wrong_client, pagination, audit of redemptions."""

from __future__ import annotations

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from api.models import Usage
from audit.models import AuditEvent
from clients import services as client_services
from invitations.models import Invitation
from tests.api.conftest import Api
from tests.invitations.conftest import ADA, GRACE

committed = pytest.mark.usefixtures("committed")


@committed
def test_client_and_applications(world, acme_api):
    client = acme_api.get("/client")
    assert client.status == 200
    assert client.json["code"] == "acme" and client.json["tier"]["code"] == "pro"
    assert "multi_use_invitations" in client.json["tier"]["features"]
    assert client.headers["Cache-Control"] == "no-store"
    applications = acme_api.get("/applications")
    assert [a["app_code"] for a in applications.json] == ["onboarding"]
    one = acme_api.get("/applications/onboarding")
    assert one.status == 200 and one.json["configuration"] == {}


@committed
def test_another_clients_application_and_a_missing_one_are_the_same_404(world, acme_api):
    _, globex, _ = world
    client_services.configure_application(actor=None, client=globex, app_code="payroll")
    foreign, missing = acme_api.get("/applications/payroll"), acme_api.get("/applications/payrolx")
    assert foreign.status == missing.status == 404
    assert foreign.json["code"] == "application_not_found"
    assert foreign.body.replace(b"payroll", b"X") == missing.body.replace(b"payrolx", b"X")
    assert foreign.headers["Content-Type"] == "application/problem+json"


@committed
def test_validate_answers_metadata_and_no_personal_data(acme_api, issue):
    invitation, token = issue()
    answer = acme_api.post("/invitations/validate", {"token": token})
    assert answer.status == 200
    assert answer.json["invitation"]["code"] == invitation.code and answer.json["valid"] is True
    for personal in (ADA.full_name, ADA.company_email, ADA.private_email, "invitee"):
        assert personal.encode() not in answer.body
    assert Invitation.objects.get(pk=invitation.pk).used_count == 0


@committed
def test_redeem_returns_the_invitee_once_and_is_audited_with_the_key(acme_api, issue):
    invitation, token = issue()
    answer = acme_api.post("/invitations/redeem", {"token": token})
    assert answer.status == 200
    assert answer.json["invitee"] == {
        "name": ADA.full_name, "company_email": ADA.company_email, "private_email": ADA.private_email,
    }  # fmt: skip
    assert answer.json["invitation"]["status"] == "accepted"
    again = acme_api.post("/invitations/redeem", {"token": token})
    assert (again.status, again.json["code"]) == (400, "already_used")
    assert ADA.company_email.encode() not in again.body
    event = AuditEvent.objects.get(action="invitation.redeemed")
    prefix = acme_api.key.split("_")[1]
    assert (event.actor_type, event.actor_label, event.target_id) == ("api_key", prefix, str(invitation.pk))


@committed
def test_another_clients_token_is_wrong_client_and_changes_nothing(world, acme_api, issue):
    _, globex, _ = world
    invitation, token = issue(client=globex)
    for path in ("/invitations/validate", "/invitations/redeem"):
        answer = acme_api.post(path, {"token": token})
        assert (answer.status, answer.json["code"]) == (400, "wrong_client"), path
    assert Invitation.objects.get(pk=invitation.pk).used_count == 0
    assert not AuditEvent.objects.filter(action="invitation.redeemed").exists()


@committed
def test_invitations_are_listed_by_keyset_pages_in_a_stable_order(world, acme_api, issue):
    issued = [issue(GRACE.__class__(f"Person {n}", f"person{n}@acme.example"))[0] for n in range(5)]
    _, globex, _ = world
    issue(client=globex)
    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = acme_api.get(f"/invitations{query}")
        assert page.status == 200
        seen += [item["code"] for item in page.json["items"]]
        for item in page.json["items"]:
            assert set(item) >= {"id", "code", "status", "application"} and "invitee" not in item
        cursor, pages = page.json["next_cursor"], pages + 1
        if cursor is None:
            break
    expected = [i.code for i in sorted(issued, key=lambda i: (i.created_at, i.pk), reverse=True)]
    assert (seen, pages) == (expected, 3)
    assert acme_api.get("/invitations?status=accepted").json["items"] == []
    assert len(acme_api.get("/invitations?status=pending&application=onboarding").json["items"]) == 5


@pytest.mark.parametrize("cursor", ["nope", "W10", "WyJ4IiwieSJd", "A" * 300])
@committed
def test_a_bad_cursor_is_a_400_problem(acme_api, cursor):
    answer = acme_api.get(f"/invitations?cursor={cursor}")
    assert answer.status == 400
    assert answer.json["code"] in {"invalid_cursor", "invalid_request"}
    assert answer.headers["Content-Type"] == "application/problem+json"


@committed
def test_each_request_is_counted_by_endpoint_and_status_class(world, acme_api):
    acme_api.get("/client")
    acme_api.get("/client")
    acme_api.get("/applications/missing")
    counters = {(u.endpoint, u.status_class): u.count for u in Usage.objects.filter(client_id=world[0].pk, count__gt=0)}
    assert counters == {("get_client", "2xx"): 2, ("get_application", "4xx"): 1}
    assert Api().get("/client").status == 401
    assert Usage.objects.filter(count__gt=0).count() == 2, "an unauthenticated request belongs to no client"


@committed
def test_a_successful_request_writes_nothing_in_its_tenant_transaction(world, acme_api):
    with CaptureQueriesContext(connections["tenant"]) as queries:
        assert acme_api.get("/applications").status == 200
    statements = [q["sql"].lstrip().split(None, 1)[0].upper() for q in queries.captured_queries]
    assert statements and not {"INSERT", "UPDATE", "DELETE", "WITH"} & set(statements), statements
    # The definer call counted it (committed on its own, before the tenant transaction).
    assert {(u.endpoint, u.status_class): u.count for u in Usage.objects.filter(count__gt=0)} == {
        ("list_applications", "2xx"): 1
    }
    with CaptureQueriesContext(connections["tenant"]) as queries:
        assert acme_api.get("/applications/missing").status == 404
    assert any(q["sql"].lstrip().startswith("WITH provisional") for q in queries.captured_queries)
