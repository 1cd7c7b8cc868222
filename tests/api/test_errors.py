"""Hostile and broken input under /api/: always a 4xx problem, never a 500; a real failure is a 500 problem."""

from __future__ import annotations

import json

import pytest

from api.models import Usage
from tests.api.conftest import Api

committed = pytest.mark.usefixtures("committed")
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


def _assert_problem(answer, status: int, code: str | None = None) -> dict:
    assert answer.status == status, answer.body
    assert answer.headers["Content-Type"] == "application/problem+json"
    body = answer.json
    assert set(body) >= PROBLEM_FIELDS and body["status"] == status
    assert body["type"].endswith("/" + body["code"])
    if code:
        assert body["code"] == code
    assert b"Traceback" not in answer.body
    return body


HOSTILE_BODIES = {
    "malformed json": (b'{"token": ', "malformed_body"),
    "not utf-8": (b'{"token": "\xff\xfe"}', "malformed_body"),
    "nul byte": (json.dumps({"token": "a\x00b"}).encode(), "malformed_body"),
    "nul in a key": (b'{"tok\\u0000en": "x"}', "malformed_body"),
    "lone surrogate": (b'{"token": "\\ud800"}', "malformed_body"),
    "deep json": (b"[" * 20_000 + b"]" * 20_000, "malformed_body"),
    "moderately deep": (b'{"token": ' + b"[" * 40 + b"]" * 40 + b"}", "malformed_body"),
    "wrong type": (b'{"token": 5}', "invalid_request"),
    "array body": (b"[1, 2]", "invalid_request"),
    "missing field": (b"{}", "invalid_request"),
    "empty token": (b'{"token": ""}', "invalid_request"),
    "not a token": (b'{"token": "abc"}', "malformed_token"),
}


@pytest.mark.parametrize("name", HOSTILE_BODIES)
@committed
def test_hostile_bodies_are_4xx_problems(acme_api, name):
    raw, code = HOSTILE_BODIES[name]
    for path in ("/invitations/validate", "/invitations/redeem"):
        _assert_problem(acme_api.post(path, raw=raw), 400, code)


@committed
def test_validation_errors_name_the_field_and_never_echo_the_value(acme_api):
    body = _assert_problem(acme_api.post("/invitations/redeem", raw=b'{"token": 12345678}'), 400, "invalid_request")
    assert body["errors"][0]["field"] == "token" and body["errors"][0]["location"] == "body"
    assert "12345678" not in json.dumps(body)
    body = _assert_problem(acme_api.get("/invitations?limit=0&status=nope"), 400, "invalid_request")
    assert {error["field"] for error in body["errors"]} == {"limit", "status"}


@committed
def test_a_body_over_64_kb_is_413(acme_api):
    raw = json.dumps({"token": "x" * 70_000}).encode()
    _assert_problem(acme_api.post("/invitations/redeem", raw=raw), 413, "payload_too_large")


@committed
def test_unknown_routes_and_methods_inside_api_are_problems(acme_api):
    _assert_problem(acme_api.get("/nowhere"), 404, "not_found")
    _assert_problem(Api().get("/nowhere"), 404, "not_found")
    answer = acme_api.call("DELETE", "/client")
    _assert_problem(answer, 405, "method_not_allowed")
    assert "GET" in answer.headers["Allow"]
    _assert_problem(acme_api.get("/applications/Bad%20Code"), 400, "invalid_request")


@committed
def test_a_nul_byte_in_the_query_string_is_a_400_problem(acme_api):
    _assert_problem(acme_api.get("/invitations?cursor=a%00b"), 400)


@committed
def test_an_unexpected_failure_is_a_500_problem_with_the_request_id(acme_api, monkeypatch, caplog):
    from api import endpoints

    def explode(principal):
        raise RuntimeError("a value that must not leak")

    monkeypatch.setattr(endpoints, "_client", explode)
    answer = acme_api.get("/client", HTTP_X_REQUEST_ID="req-42")
    body = _assert_problem(answer, 500, "internal_error")
    assert body["request_id"] == "req-42" and answer.headers["X-Request-ID"] == "req-42"
    assert b"must not leak" not in answer.body
    assert "must not leak" not in caplog.text and "RuntimeError" in caplog.text
    assert acme_api.key not in caplog.text
    counters = {(u.endpoint, u.status_class): u.count for u in Usage.objects.filter(count__gt=0)}
    assert counters == {("get_client", "5xx"): 1}, "a failed request is counted after its rollback"


@committed
def test_the_request_id_is_echoed(acme_api):
    assert acme_api.get("/client", HTTP_X_REQUEST_ID="abc-123").headers["X-Request-ID"] == "abc-123"
