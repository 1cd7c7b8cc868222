"""Reads about invitations: seat usage against the tier, lookups by code."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from dataclasses import dataclass

from django.db import connections, router
from django.db.models import Case, IntegerField, Q, Sum, When

from clients.models import Client, Tier
from config.errors import NotFound, excerpt
from invitations.models import Invitation
from invitations.tokens import InvitationRejected
from vault.keys import ClientKeys
from vault.models import SigningKey
from vault.selectors import keys_from_rows


def seats_used(client: Client) -> int:
    """Seats held against the tier's max_users: every use a pending invitation still allows, plus every use made.

    A pending invitation reserves all its uses (`max_uses`); any other counts the people who
    actually redeemed it (`used_count`).
    """
    return (
        Invitation.objects.filter(client_id=client.pk).aggregate(
            seats=Sum(
                Case(
                    When(status=Invitation.Status.PENDING, then="max_uses"),
                    default="used_count",
                    output_field=IntegerField(),
                )
            )
        )["seats"]
        or 0
    )


@dataclass(frozen=True)
class IssueContext:
    """What issuing reads under the client's row lock (`issue_context`)."""

    client: Client  # as it is now, with its tier
    seats_used: int  # as `seats_used` counts them, from the trigger-kept counter
    keys: ClientKeys
    signing_key: SigningKey | None  # the active one, enough of it to sign with (vault.signing.sign)


def _instance(model, row: dict, using: str):
    """A model instance from `to_jsonb(row)`, as if Django had loaded it (Django's connections leave jsonb as text)."""
    row = json.loads(row) if isinstance(row, str) else row
    instance = model(**{field.attname: field.to_python(row[field.column]) for field in model._meta.concrete_fields})
    instance._state.adding, instance._state.db = False, using
    return instance


def issue_context(client_id, *, using: str) -> IssueContext:
    """Lock the client's row, then read its tier, seats, data keys and the active signing key: one round trip.

    The database function `invitation_issue_context` (invitations/migrations/0006) takes the lock
    in one statement and reads in the next, so the seats include every issue that held the lock
    before; the seats come from `reports_clientseats` (O(1), kept exact by the invitations'
    triggers in the writing transaction) instead of a sum over every invitation of the client.
    Call it inside the issuing transaction: the lock lasts until it ends.
    """
    if not connections[using].in_atomic_block:
        raise RuntimeError("issue_context() must run inside the issuing transaction: its lock ends with it")
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT * FROM invitation_issue_context(%s)", [client_id])
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"No client with id '{client_id}'.", code="client_not_found")
    client_row, tier_row, seats, versions, statuses, wrapped, kid, signing_wrapped = row
    client = _instance(Client, client_row, using)
    client.tier = _instance(Tier, tier_row, using)
    keys = keys_from_rows(client, zip(versions, statuses, wrapped, strict=True))
    signing_key = None
    if kid is not None:
        signing_key = SigningKey(kid=kid, status=SigningKey.Status.ACTIVE, wrapped_private_key=bytes(signing_wrapped))
    return IssueContext(client, int(seats), keys, signing_key)


@dataclass(frozen=True)
class IssueChecks:
    pending: dict[tuple[str, str], str]  # (application id, e-mail hash) of a pending invitation → its code
    codes_taken: set[str]


_ISSUE_CHECKS = """
SELECT
  ARRAY(SELECT application_id::text || ' ' || email_hash || ' ' || code FROM {table}
         WHERE client_id = %(client)s AND application_id = ANY(%(applications)s) AND status = 'pending'
           AND email_hash = ANY(%(hashes)s) AND email_hash <> ''),
  ARRAY(SELECT code FROM {table} WHERE code = ANY(%(codes)s))
"""


def issue_checks(client: Client, *, applications: list, email_hashes: list[str], codes: list[str]) -> IssueChecks:
    """What a batch needs to know of its rows, in one round trip: which of `email_hashes` already have a pending
    invitation to one of `applications`, and which of `codes` are taken.

    The duplicate lookup is on the unique index `invitation_one_pending_per_email`. The seats and
    the signing key come with the lock (`issue_context`).
    """
    sql = _ISSUE_CHECKS.format(table=Invitation._meta.db_table)
    with connections[router.db_for_read(Invitation)].cursor() as cursor:
        parameters = {"client": client.pk, "applications": [application.pk for application in applications],
                      "hashes": list(email_hashes), "codes": list(codes)}  # fmt: skip
        cursor.execute(sql, parameters)
        pending, taken = cursor.fetchone()
    rows = (entry.split(" ") for entry in pending)
    return IssueChecks({(app, hash_): code for app, hash_, code in rows}, set(taken))


INVITATION_CODE = re.compile(r"INV-[0-9A-Z]{6}")


def get_invitation(reference: str) -> Invitation:
    """An invitation by its support code (INV-…) or id."""
    reference = (reference or "").strip()
    lookup = Q(code=reference.upper()) if INVITATION_CODE.fullmatch(reference.upper()) else Q()
    with contextlib.suppress(ValueError):  # a code, not an id
        lookup |= Q(pk=uuid.UUID(reference))
    # Neither a code nor an id names nothing: answered without a query.
    invitation = Invitation.objects.select_related("client", "application").filter(lookup).first() if lookup else None
    if invitation is None:
        raise NotFound(f"No invitation '{excerpt(reference)}'.", code="invitation_not_found")
    return invitation


def recent_invitations(client: Client, limit: int = 10):
    return Invitation.objects.filter(client_id=client.pk).select_related("application").order_by("-created_at")[:limit]


# What "Check a token" shows, in the order the checks run: (label, rejection code, stage).
CLAIMS_CHECK = "Claims of the shapes the console issues"  # the last check that needs no database
TOKEN_CHECKS = [
    ("Well-formed token", "malformed_token", "token"),
    ("Signed with EdDSA", "algorithm_not_allowed", "token"),
    ("Signing key is published", "unknown_kid", "token"),
    ("Signature verifies", "invalid_signature", "token"),
    ("Issuer", "wrong_issuer", "token"),
    ("Audience", "wrong_audience", "token"),
    ("Valid already (nbf)", "not_yet_valid", "token"),
    ("Not expired (exp)", "expired", "token"),
    (CLAIMS_CHECK, "malformed_token", "claims"),
    ("Invitation exists", "unknown_invitation", "database"),
    ("Client not erased", "client_erased", "database"),
    ("Client active", "client_inactive", "database"),
    ("Current token (not resent or altered)", "hash_mismatch", "database"),
    ("Not revoked", "revoked", "database"),
    ("Uses left", "already_used", "database"),
    ("Not expired (database)", "expired", "database"),
]


@dataclass(frozen=True)
class Verdict:
    label: str
    outcome: str  # "pass", "fail" or "not checked"
    detail: str = ""


def check_token(token: str) -> tuple[list[Verdict], Invitation | None]:
    """Every check `validate_invitation` makes, with its verdict: for support staff looking at a pasted token."""
    from invitations.services import validate_invitation  # noqa: PLC0415 - services import this module

    try:
        invitation = validate_invitation(token=(token or "").strip())
    except InvitationRejected as rejection:
        failed = next(
            i for i, (_, code, stage) in enumerate(TOKEN_CHECKS) if (code, stage) == (rejection.code, rejection.stage)
        )
        verdicts = [
            Verdict(label, "pass" if i < failed else "fail" if i == failed else "not checked",
                    rejection.message if i == failed else "")
            for i, (label, _, _) in enumerate(TOKEN_CHECKS)
        ]  # fmt: skip
        return verdicts, None
    return [Verdict(label, "pass") for label, _, _ in TOKEN_CHECKS], invitation
