"""Hostile tokens are rejected with a code through every door, never crash, and change nothing."""

from __future__ import annotations

import base64
import json
from contextlib import ExitStack

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from invitations import tokens
from invitations.tokens import REJECTIONS, InvitationRejected
from tests.clients.test_commands import assert_one_line_error


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_header(header: bytes) -> str:
    """A token with `header` (raw JSON bytes), a plausible payload and a signature that cannot verify."""
    return f"{b64(header)}.{b64(b'{}')}.{b64(bytes(64))}"


# The three crashes of issue 8, point 6: a kid the database cannot hold, a kid UTF-8 cannot
# encode, and a header deeper than the parser's recursion limit.
REPRODUCED = {
    "nul kid": (with_header(b'{"alg":"EdDSA","kid":"a\\u0000b","typ":"JWT"}'), "unknown_kid"),
    "surrogate kid": (with_header(b'{"alg":"EdDSA","kid":"\\ud800","typ":"JWT"}'), "unknown_kid"),
    "5,000 nested [": (with_header(b"[" * 5000), "malformed_token"),
}
reproduced = pytest.mark.parametrize(("token", "code"), REPRODUCED.values(), ids=REPRODUCED.keys())


@reproduced
@pytest.mark.django_db(databases="__all__")
def test_decode_rejects_the_reproduced_tokens(world, token, code):
    with pytest.raises(InvitationRejected) as caught:
        tokens.decode(token)
    assert caught.value.code == code


@reproduced
@pytest.mark.parametrize("command", ["validate_invitation", "redeem_invitation"])
def test_the_commands_reject_the_reproduced_tokens_with_their_code(manage, world, command, token, code):
    human = manage(command, token)
    assert_one_line_error(human, 1)
    assert code in human.err and human.out == ""
    as_json = manage(command, token, "--json")
    assert as_json.code == 1 and as_json.out.count("\n") == 1, as_json
    assert as_json.json == {"ok": False, "error": {"code": code, "message": f"{code}: {REJECTIONS[code]}"}}


@reproduced
@pytest.mark.django_db(databases="__all__")
def test_the_check_page_shows_the_code_of_the_reproduced_tokens(client, world, token, code):
    client.force_login(User.objects.create_superuser("staff", "staff@thepia.net", "not-used"))
    response = client.post(reverse("admin:invitations_invitation_check"), {"token": token})
    page = response.content.decode()
    assert response.status_code == 200 and f"{code}: {REJECTIONS[code]}" in page
    assert page.count("> pass") == {"malformed_token": 0, "unknown_kid": 2}[code]


def header_token(**header) -> str:
    return with_header(json.dumps({"alg": "EdDSA", "typ": "JWT", **header}).encode())


def rejection_and_queries(token: str) -> tuple[str, int]:
    """The rejection code of `token` and the number of queries its decoding sent, on every alias."""
    with ExitStack() as stack:
        captured = [stack.enter_context(CaptureQueriesContext(connections[alias])) for alias in connections]
        with pytest.raises(InvitationRejected) as caught:
            tokens.decode(token)
    return caught.value.code, sum(len(queries) for queries in captured)


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("kid", ["a\x00b", "\ud800", "x" * 65, "", "kid with spaces", "kid/../x", 42, None, ["k"]])
def test_a_kid_of_another_shape_is_unknown_without_a_query(world, kid):
    tokens.public_keys.refresh()
    assert rejection_and_queries(header_token(kid=kid)) == ("unknown_kid", 0)
    assert rejection_and_queries(header_token(kid="not-published")) == ("unknown_kid", 1)  # the shape is all it takes


@pytest.mark.parametrize(("alg", "echoed"), [("HS256", "'HS256'"), ("x" * 33, None), (["EdDSA"], None)])
def test_the_algorithm_is_echoed_only_when_short(alg, echoed):
    with pytest.raises(InvitationRejected) as caught:
        tokens.decode(header_token(alg=alg))
    named = f" with {echoed}" if echoed else ""
    assert caught.value.message == f"algorithm_not_allowed: The token is signed{named}, not with EdDSA."
