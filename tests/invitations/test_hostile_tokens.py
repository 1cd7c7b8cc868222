"""Hostile tokens are rejected with a code through every door, never crash, and change nothing."""

from __future__ import annotations

import base64
import json
from contextlib import ExitStack

import jwt
import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, assume, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from clients.models import Client
from invitations import services, tokens
from invitations.models import Invitation
from invitations.selectors import check_token
from invitations.tokens import REJECTIONS, InvitationRejected
from tests.clients.test_commands import assert_one_line_error
from vault.selectors import active_signing_key
from vault.signing import _private_key


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


# --- Property: whatever arrives, a rejection with a code, and the database untouched ------------

fuzzed = hypothesis_settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

# st.characters() leaves out lone surrogates unless asked for them by code point.
any_character = st.one_of(st.characters(), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), st.just("\x00"))
hostile_strings = st.one_of(
    st.text(any_character, max_size=40),
    st.sampled_from(["", "a\x00b", "\ud800", "\udc00\ud800", "acme\n", "ACME", "globex", "onboarding", "x" * 3000]),
)
hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**200), 2**200),
    st.sampled_from([0, -1, 2**31, 2**63, 2**64, 253_402_300_800, 10**300]),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_strings,
)
json_values = st.recursive(
    hostile_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_strings, inner, max_size=4),
    max_leaves=12,
)
depth = st.integers(1_000, 5_000)
# JSON texts that no Python value serialises to: nesting past the recursion limit, numbers past
# the 4,300-digit limit or a float's range, escapes of NUL and of lone surrogates.
raw_json = st.one_of(
    json_values.map(json.dumps),
    depth.map(lambda n: "[" * n),
    depth.map(lambda n: "[" * n + "]" * n),
    depth.map(lambda n: '{"a":' * n + "0" + "}" * n),
    st.integers(4_301, 6_000).map(lambda n: "9" * n),
    st.sampled_from(["NaN", "-Infinity", "1e999", "-1e999", "1e-999", '"\\u0000"', '"\\ud800"', '"a\\udfffb"']),
)
PUBLISHED_KID = '"<published kid>"'  # replaced by the real one, known only once the test runs


def json_object(members: dict) -> str:
    """A JSON object from member names and raw JSON texts."""
    return "{" + ",".join(f"{json.dumps(name)}:{text}" for name, text in members.items()) + "}"


def b64_text(text: str) -> str:
    return b64(text.encode("utf-8", "surrogatepass"))


raw_tokens = st.one_of(
    st.text(any_character, max_size=300),
    st.binary(max_size=300).map(lambda data: data.decode("utf-8", "surrogateescape")),
    st.lists(st.text(any_character, max_size=40), min_size=1, max_size=5).map(".".join),
    st.lists(st.from_regex(r"[A-Za-z0-9_-]{0,80}", fullmatch=True), min_size=3, max_size=3).map(".".join),
)
kids = st.one_of(
    st.just(PUBLISHED_KID),
    st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True).map(json.dumps),
    hostile_strings.map(json.dumps),
    raw_json,
)
header_members = st.dictionaries(st.sampled_from(["typ", "crit", "b64", "jku", "x5u", "cty"]), raw_json, max_size=2)
# One hostile part at a time, the rest sane, so that every check in turn is reached.
headers = st.one_of(
    raw_json,
    kids.map(lambda kid: json_object({"alg": '"EdDSA"', "kid": kid})),
    st.builds(lambda alg, kid: json_object({"alg": alg, "kid": kid}), raw_json, kids),
    st.builds(lambda kid, members: json_object({"alg": '"EdDSA"', "kid": kid, **members}), kids, header_members),
)
payloads = st.one_of(
    raw_json.map(b64_text),
    st.dictionaries(st.sampled_from(tokens.REQUIRED_CLAIMS), raw_json, max_size=9).map(json_object).map(b64_text),
    st.binary(min_size=1, max_size=200).map(b64),
)
# What may replace a claim of a genuine token (None: the claim is left out); "invitee.data" and
# friends reach inside the invitee object.
claim_changes = st.dictionaries(
    st.sampled_from([*tokens.REQUIRED_CLAIMS, "permissions", "restrictions", "jti", "invitee.data", "invitee.kv"]),
    st.one_of(hostile_strings.map(json.dumps), json_values.map(json.dumps), raw_json, st.none()),
    min_size=1,
    max_size=3,
)


def database_state():
    invitations = Invitation.objects.order_by("pk").values_list("pk", "status", "used_count", "token_hash")
    return list(invitations), list(Client.objects.values_list("pk", "status")), AuditEvent.objects.count()


def assert_rejected_by_every_door(token, *, signed_by_the_console: bool = False) -> None:
    """Only InvitationRejected with a known code comes out, and nothing changes in the database.

    `decode` checks the token alone, so a token the console's key signed may pass it; the doors
    that consult the database still refuse it, as it is not an invitation's current token.
    """
    before = database_state()
    doors = {
        "validate": lambda token: services.validate_invitation(token=token),
        "redeem": lambda token: services.redeem_invitation(actor=None, token=token),
    }
    try:
        tokens.decode(token)
    except InvitationRejected as rejection:
        assert rejection.code in REJECTIONS
    else:
        assert signed_by_the_console, "decode accepted a token the console did not sign"
    for name, door in doors.items():
        with pytest.raises(InvitationRejected) as caught:
            door(token)
        assert caught.value.code in REJECTIONS, name
    verdicts, invitation = check_token(token)
    failed = [verdict for verdict in verdicts if verdict.outcome == "fail"]
    assert invitation is None and len(failed) == 1 and failed[0].detail.split(":")[0] in REJECTIONS
    assert database_state() == before


@pytest.mark.usefixtures("committed", "world")
@fuzzed
@given(token=raw_tokens)
def test_random_text_is_rejected(token):
    assert_rejected_by_every_door(token)


@pytest.mark.usefixtures("committed", "world")
@fuzzed
@given(header=headers, payload=payloads, signature=st.binary(max_size=80))
def test_hostile_headers_are_rejected(header, payload, signature):
    header = header.replace(PUBLISHED_KID, json.dumps(active_signing_key().kid))
    assert_rejected_by_every_door(f"{b64_text(header)}.{payload}.{b64(signature)}")


@pytest.fixture
def genuine(committed, issue) -> str:
    """A pending invitation's token, whose claims the property below turns hostile."""
    return issue()[1]


def signed(claims: dict) -> str:
    """`claims` (raw JSON texts) signed with the console's own key, as only a holder of that key could."""
    key = active_signing_key()
    header = json_object({"alg": '"EdDSA"', "kid": json.dumps(key.kid), "typ": '"JWT"'})
    signing_input = f"{b64_text(header)}.{b64_text(json_object(claims))}"
    signature = _private_key(key.kid, bytes(key.wrapped_private_key)).sign(signing_input.encode())
    return f"{signing_input}.{b64(signature)}"


@fuzzed
@given(changes=claim_changes)
# Always tried: what the database cannot hold or encode, and numbers PyJWT accepts but no datetime can.
@example(changes={"client": '"a\\u0000b"'})
@example(changes={"client": '"\\ud800"'})
@example(changes={"app": '"\\udfff"', "sub": '"urn:uuid:00000000-0000-4000-8000-000000000000"'})
@example(changes={"exp": "1e999", "iat": "true"})
@example(changes={"exp": "99999999999999999999", "nbf": '"0"'})
def test_hostile_claims_behind_a_valid_signature_are_rejected(genuine, changes):
    decoded = jwt.decode(genuine, options={"verify_signature": False})
    claims = {name: json.dumps(value) for name, value in decoded.items()}
    invitee = {name: json.dumps(value) for name, value in decoded["invitee"].items()}
    for path, text in changes.items():
        members, name = (invitee, path.removeprefix("invitee.")) if path.startswith("invitee.") else (claims, path)
        if text is None:
            members.pop(name, None)
        else:
            members[name] = text
    if "invitee" not in changes:
        claims["invitee"] = json_object(invitee)
    token = signed(claims)
    assume(token != genuine)  # the same claims signed again are the genuine token, which is valid
    assert_rejected_by_every_door(token, signed_by_the_console=True)
