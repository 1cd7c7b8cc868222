"""Every write to invitations — issue, resend, revoke, redeem, expire, clean up — validated and audited.

The invitee's personal data is a parameter of `issue_invitation`/`resend_invitation` and the
return value of `redeem_invitation`, and goes nowhere else: not in a column, an audit event or
a log line. Only a keyed hash of the company e-mail is kept, to refuse duplicate invitations.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connections, router, transaction
from django.utils import timezone

from audit.services import actor_fields, record
from clients.locks import single_run
from clients.models import Application, Client
from clients.tenancy import in_tenant_context, tenant_context
from config.errors import Conflict, InvalidInput, Refused
from config.validation import CONTROL_CHARACTERS, CONTROL_CHARACTERS_MESSAGE, conflicts_as, refuse_control_characters
from invitations import tokens
from invitations.delivery import SEND_TO_CHOICES, Delivery, send_after_commit
from invitations.models import Invitation
from invitations.selectors import issue_checks, issue_context
from invitations.tokens import MAX_PERMISSIONS, PERMISSION, InvitationRejected
from vault.selectors import active_signing_key, client_keys, is_erased
from vault.services import create_data_key

MIN_VALIDITY = timedelta(hours=1)
MAX_VALIDITY = timedelta(days=30)
MAX_USES = 1000
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CLEANUP_LOCK = "invitations.cleanup"
EMAIL_HASH_INFO = b"flows-invitation-email"
MAX_RESTRICTIONS_BYTES = 4096
MAX_BATCH_ROWS = 2000  # one batch's invitations: a file of new hires, not a migration (docs/invitations.md)


def _atomic():
    return transaction.atomic(using=router.db_for_write(Invitation))


@dataclass(frozen=True)
class Invitee:
    """The invitee's personal data: only ever in memory and, encrypted, in the token."""

    full_name: str
    company_email: str
    private_email: str = ""

    def cleaned(self) -> Invitee:
        name = (self.full_name or "").strip()
        company, private = (self.company_email or "").strip().lower(), (self.private_email or "").strip().lower()
        errors: dict[str, list[str]] = {}
        if not name or len(name) > 200:
            errors["full_name"] = ["Give the invitee's full name (at most 200 characters)."]
        elif CONTROL_CHARACTERS.search(name):
            errors["full_name"] = [CONTROL_CHARACTERS_MESSAGE]
        for name_of_field, value, required in (("company_email", company, True), ("private_email", private, False)):
            if not value and not required:
                continue
            try:
                validate_email(value)
            except ValidationError:
                errors[name_of_field] = ["Enter a valid e-mail address."]
        if errors:
            raise InvalidInput("; ".join(f"{name}: {messages[0]}" for name, messages in errors.items()), fields=errors)
        return Invitee(name, company, private)

    def as_claim(self) -> dict[str, str]:
        return {"name": self.full_name, "company_email": self.company_email, "private_email": self.private_email}


def _email_hashes(keys, email: str) -> list[str]:
    """HMAC-SHA256 of the normalised e-mail under a key derived from each live data key of the client.

    Keyed by the data key, so the hash says nothing without it and erasure unlinks it; one per
    live version, so a duplicate is recognised across a data key rotation. The first is the
    active version's.
    """
    return [
        hmac.new(keys.derived_key(version, EMAIL_HASH_INFO), email.encode(), hashlib.sha256).hexdigest()
        for version in keys.live_versions
    ]


def _cleaned_permissions(permissions: list[str] | None) -> list[str]:
    cleaned = sorted({permission.strip().lower() for permission in permissions or [] if permission.strip()})
    bad = [permission for permission in cleaned if not PERMISSION.match(permission)]
    if bad or len(cleaned) > MAX_PERMISSIONS:
        raise InvalidInput(
            f"Permissions are up to {MAX_PERMISSIONS} names of letters, digits, '_', '.', ':' or '-' "
            f"(at most 50 characters each){': not ' + ', '.join(bad) if bad else ''}.",
            code="invalid_permissions",
            fields={"permissions": ["Use short names such as manager or reports:read."]},
        )
    return cleaned


def _cleaned_restrictions(restrictions: dict[str, Any] | None) -> dict[str, Any]:
    restrictions = restrictions or {}
    if not isinstance(restrictions, dict) or len(json.dumps(restrictions, default=str)) > MAX_RESTRICTIONS_BYTES:
        raise InvalidInput(
            f"Restrictions are a JSON object of at most {MAX_RESTRICTIONS_BYTES} bytes.", code="invalid_restrictions"
        )
    return restrictions


def _random_code() -> str:
    return "INV-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))


def _free_codes(codes: list[str], taken: set[str]) -> list[str]:
    """`codes` with each taken one replaced by a free one (a collision is rare: 32^6 codes)."""
    while taken & set(codes):
        codes = [code if code not in taken else _random_code() for code in codes]
        taken = set(Invitation.objects.filter(code__in=codes).values_list("code", flat=True))
    return codes


def _checked_send_to(send_to: str) -> str:
    if send_to not in SEND_TO_CHOICES:
        raise InvalidInput(
            f"Send to is one of {', '.join(SEND_TO_CHOICES)}.", code="invalid_send_to", fields={"send_to": ["Unknown."]}
        )
    return send_to


def _private_address_missing(send_to: str, invitee: Invitee) -> bool:
    return send_to == "private" and not invitee.private_email


def _keys_of(actor, client: Client):
    keys = client_keys(client)
    if keys.active_version is None:  # a client from before the vault: its first data key, now
        create_data_key(actor=actor, client=client)
        keys = client_keys(client)
    return keys


def _keys_ready(actor, client: Client, keys):
    """`keys` as read with the lock, or, for a client from before the vault, its first data key created now."""
    if keys.active_version is None:
        return _keys_of(actor, client)
    return keys


_INSERT_UNLESS_PENDING = """
WITH pending AS (
    SELECT code FROM {table}
     WHERE client_id = %s AND application_id = %s AND status = 'pending' AND email_hash = ANY(%s) AND email_hash <> ''
     LIMIT 1
), inserted AS (
    INSERT INTO {table} ({columns}) SELECT {values} WHERE NOT EXISTS (SELECT FROM pending)
    ON CONFLICT (code) DO NOTHING RETURNING 1
)
SELECT (SELECT code FROM pending), EXISTS (SELECT FROM inserted)
"""


def _insert_unless_pending(invitation: Invitation, email_hashes: list[str]) -> str | None:
    """Insert `invitation` unless its invitee has a pending one to the same application: None when inserted, else
    the pending invitation's code. One round trip; a taken support code (rare: 32^6 codes) gets another and retries.

    Runs under the client's row lock, which serialises issues, so the check and the insert see the same rows.
    """
    alias = router.db_for_write(Invitation)
    connection = connections[alias]
    fields = Invitation._meta.concrete_fields
    table = connection.ops.quote_name(Invitation._meta.db_table)
    sql = _INSERT_UNLESS_PENDING.format(
        table=table,
        columns=", ".join(connection.ops.quote_name(field.column) for field in fields),
        values=", ".join(f"%s::{field.db_type(connection)}" for field in fields),
    )
    while True:
        values = [field.get_db_prep_save(field.pre_save(invitation, True), connection) for field in fields]
        with connection.cursor() as cursor:
            cursor.execute(sql, [invitation.client_id, invitation.application_id, list(email_hashes), *values])
            pending, inserted = cursor.fetchone()
        if pending is not None:
            return pending
        if inserted:
            invitation._state.adding, invitation._state.db = False, alias
            return None
        invitation.code = _random_code()  # the code was taken


def _check_issuable(client: Client, application: Application, expires_in: timedelta, max_uses: int) -> None:
    if client.status != Client.Status.ACTIVE:
        raise Refused(
            f"Client {client.code} is {client.status}; invitations need an active client.", code="client_inactive"
        )
    if application.client_id != client.pk:
        raise InvalidInput("The application belongs to another client.", code="wrong_application")
    if application.status != Application.Status.ENABLED:
        raise Refused(f"Application {application.app_code} is disabled.", code="application_disabled")
    if not MIN_VALIDITY <= expires_in <= MAX_VALIDITY:
        raise InvalidInput(
            "An invitation is valid for between 1 hour and 30 days.",
            code="invalid_expiry",
            fields={"expires_in": ["Between 1 hour and 30 days."]},
        )
    if not 1 <= max_uses <= MAX_USES:
        raise InvalidInput(
            f"Uses must be between 1 and {MAX_USES}.", code="invalid_uses", fields={"max_uses": ["1-1000"]}
        )
    if max_uses > 1 and "multi_use_invitations" not in client.tier.features:
        raise Refused(
            f"Tier {client.tier.code} has no multi-use invitations; issue single-use ones.", code="feature_not_in_tier"
        )


def issue_invitation(
    *,
    actor,
    client: Client,
    application: Application,
    invitee: Invitee,
    expires_in: timedelta = timedelta(days=7),
    max_uses: int = 1,
    permissions: list[str] | None = None,
    restrictions: dict[str, Any] | None = None,
    send_to: str = "none",
) -> tuple[Invitation, str]:
    """A new pending invitation and its token (the only copy: it is not stored).

    `send_to` ("none", "company", "private", "both") e-mails the link once the transaction has
    committed (invitations/delivery.py); the returned invitation's `delivery` says how it went.
    """
    invitee = invitee.cleaned()
    send_to = _checked_send_to(send_to)
    if _private_address_missing(send_to, invitee):
        raise InvalidInput(
            "There is no private e-mail to send to.", code="no_private_email", fields={"private_email": ["Required."]}
        )
    permissions = _cleaned_permissions(permissions)
    restrictions = _cleaned_restrictions(restrictions)
    now = timezone.now()
    with _atomic():
        # The client's row lock (it serialises concurrent issues against the tier's max_users), then its seats,
        # data keys and the active signing key: one round trip (docs/performance.md, "Issuing at scale").
        context = issue_context(client.pk, using=router.db_for_write(Invitation))
        client = context.client
        _check_issuable(client, application, expires_in, max_uses)
        if context.seats_used + max_uses > client.tier.max_users:
            raise Refused(
                f"Tier {client.tier.code} allows {client.tier.max_users} users; client {client.code} holds "
                f"{context.seats_used} seat(s), and this invitation needs {max_uses}.",
                code="seat_limit",
            )
        keys = _keys_ready(actor, client, context.keys)
        email_hashes = _email_hashes(keys, invitee.company_email)
        signing_key = context.signing_key or active_signing_key()  # the latter raises: there is none
        invitation = Invitation(
            client=client,
            application=application,
            code=_random_code(),
            max_uses=max_uses,
            permissions=permissions,
            restrictions=restrictions,
            expires_at=now + expires_in,
            email_hash=email_hashes[0],
            kid=signing_key.kid,
            created_by=actor_fields(actor)[2][:200],
        )
        token = tokens.encode(
            invitation=invitation,
            client=client,
            application=application,
            invitee=invitee.as_claim(),
            keys=keys,
            signing_key=signing_key,
            issued_at=now,
        )
        invitation.token_hash = tokens.token_hash(token)
        # The duplicate check rides on the insert (one round trip): nothing is inserted when the person already
        # has a pending invitation to the application, under any live data key version's hash.
        with conflicts_as("A concurrent request issued the same invitation; try again."):
            if _insert_unless_pending(invitation, email_hashes) is not None:
                raise Conflict(
                    f"This person already has a pending invitation to {application.app_code}; resend or revoke it.",
                    code="duplicate_invitation",
                )
        record(
            actor=actor,
            action="invitation.issued",
            client=client,
            target=invitation,
            changes={
                "application": application.app_code,
                "expires_at": invitation.expires_at,
                "max_uses": max_uses,
                "permissions": permissions,
            },
        )
        invitation.delivery = _schedule(actor, client, send_to, [(invitation, invitee, token)])
    return invitation, token


def _schedule(actor, client: Client, send_to: str, issued: list[tuple[Invitation, Invitee, str]]) -> Delivery | None:
    """E-mail each issued invitation's link after the commit; None when nothing is to be sent."""
    if send_to == "none":
        return None
    delivery = Delivery(send_to)
    items = [(invitation, invitee, tokens.invitation_link(client, invitation.application, token))
             for invitation, invitee, token in issued]  # fmt: skip
    send_after_commit(actor=actor, client=client, delivery=delivery, items=items)
    return delivery


# --- Batches -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvitationRequest:
    """One row of a batch: who, to which application (by code), with which permissions, for how long."""

    line: int
    invitee: Invitee
    app_code: str
    permissions: list[str] = field(default_factory=list)
    expires_in: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class RowError:
    """Why a row cannot be issued. `line` 0 is the batch as a whole (the seats)."""

    line: int
    field: str
    reason: str


@dataclass(frozen=True)
class IssuedInvitation:
    line: int
    invitation: Invitation
    token: str
    link: str


@dataclass
class BatchResult:
    rows: int
    errors: list[RowError] = field(default_factory=list)
    issued: list[IssuedInvitation] = field(default_factory=list)
    valid_rows: int = 0
    dry_run: bool = False
    delivery: Delivery | None = None

    @property
    def batch_error(self) -> RowError | None:
        return next((error for error in self.errors if error.line == 0), None)


def _row_errors(request: InvitationRequest, send_to: str) -> tuple[list[RowError], Invitee | None, list[str]]:
    errors: list[RowError] = []
    invitee = permissions = None
    try:
        invitee = request.invitee.cleaned()
    except InvalidInput as error:
        errors += [RowError(request.line, name, messages[0]) for name, messages in error.fields.items()]
    try:
        permissions = _cleaned_permissions(request.permissions)
    except InvalidInput as error:
        errors.append(RowError(request.line, "permissions", error.message))
    if not MIN_VALIDITY <= request.expires_in <= MAX_VALIDITY:
        errors.append(RowError(request.line, "validity", "Between 1 hour and 30 days (e.g. 12h, 7d)."))
    if invitee is not None and _private_address_missing(send_to, invitee):
        errors.append(RowError(request.line, "private_email", "Required: the e-mail goes to the private address."))
    return errors, invitee, permissions


def issue_invitations(
    *,
    actor,
    client: Client,
    requests: list[InvitationRequest],
    valid_only: bool = False,
    dry_run: bool = False,
    send_to: str = "none",
    unreadable: list[RowError] | None = None,
) -> BatchResult:
    """Issue a batch of single-use invitations for one client: every row checked first, one transaction, one lock.

    Per-row problems (field shapes, unknown or disabled application, a duplicate in the batch or
    of a pending invitation) are returned as `RowError`s; with any of them nothing is issued,
    unless `valid_only`. The seats are checked for the whole batch under the client's row lock.
    The batch is **one operation**: one audit event, `invitation.batch_issued`, lists every
    invitation it issued (docs/invitations.md). Tokens and links are returned once, not stored.
    `unreadable` are the rows a door could not even read (a CSV line with the wrong cell count):
    they count as invalid rows.
    """
    send_to = _checked_send_to(send_to)
    unreadable = list(unreadable or [])
    rows_given = len(requests) + len(unreadable)
    if not rows_given:
        raise InvalidInput("The batch has no rows.", code="empty_batch")
    if rows_given > MAX_BATCH_ROWS:
        raise InvalidInput(
            f"A batch holds at most {MAX_BATCH_ROWS:,} invitations; this one has {rows_given:,}. Split it.",
            code="batch_too_large",
        )
    result = BatchResult(rows=rows_given, dry_run=dry_run, errors=unreadable)
    rows = _shaped_rows(requests, send_to, result.errors)
    now = timezone.now()
    with _atomic():
        # One lock for the whole batch, and with it the seats, data keys and signing key (one round trip).
        context = issue_context(client.pk, using=router.db_for_write(Invitation))
        client = context.client
        if client.status != Client.Status.ACTIVE:
            raise Refused(
                f"Client {client.code} is {client.status}; invitations need an active client.", code="client_inactive"
            )
        keys = _keys_ready(actor, client, context.keys)
        rows = _with_applications(client, rows, result.errors)
        hashes = [_email_hashes(keys, invitee.company_email) for _, invitee, _, _ in rows]
        codes = [_random_code() for _ in rows]
        applications = list({application.pk: application for _, _, _, application in rows}.values())
        checks = issue_checks(
            client, applications=applications, email_hashes=[h for row in hashes for h in row], codes=codes
        )
        issuable = _not_pending(rows, hashes, checks, result.errors)
        free = client.tier.max_users - context.seats_used
        if len(issuable) > free:
            message = (
                f"Tier {client.tier.code} allows {client.tier.max_users} users; client {client.code} holds "
                f"{context.seats_used} seat(s), so {max(free, 0)} are free and this batch needs {len(issuable)}."
            )
            result.errors.append(RowError(0, "seats", message))
        result.errors.sort(key=lambda error: error.line)
        result.valid_rows = len(issuable)
        if result.batch_error or (result.errors and not valid_only) or dry_run or not issuable:
            return result
        signing_key = context.signing_key or active_signing_key()  # the latter raises: there is none
        codes = _free_codes(codes[: len(issuable)], checks.codes_taken)
        created_by = actor_fields(actor)[2][:200]
        issued = []
        for (request, invitee, permissions, application, email_hash), code in zip(issuable, codes, strict=True):
            invitation = Invitation(
                id=uuid.uuid4(), client=client, application=application, code=code, permissions=permissions,
                restrictions={}, expires_at=now + request.expires_in, email_hash=email_hash, kid=signing_key.kid,
                created_by=created_by,
            )  # fmt: skip
            token = tokens.encode(
                invitation=invitation, client=client, application=application, invitee=invitee.as_claim(), keys=keys,
                signing_key=signing_key, issued_at=now,
            )  # fmt: skip
            invitation.token_hash = tokens.token_hash(token)
            issued.append((request, invitee, invitation, token))
        invitations = [invitation for _, _, invitation, _ in issued]
        with conflicts_as("A concurrent request issued one of these invitations; try again."):
            Invitation.objects.bulk_create(invitations, batch_size=1000)
        record(
            actor=actor,
            action="invitation.batch_issued",
            client=client,
            target_type=Invitation._meta.label_lower,
            target_label=f"{len(invitations)} invitation(s)",
            changes={
                "count": len(invitations),
                "applications": dict(Counter(invitation.application.app_code for invitation in invitations)),
                "invitations": [invitation.code for invitation in invitations],
                "invalid_rows_skipped": len(result.errors),
            },
        )
        result.issued = [
            IssuedInvitation(line=request.line, invitation=invitation, token=token,
                             link=tokens.invitation_link(client, invitation.application, token))
            for request, _, invitation, token in issued
        ]  # fmt: skip
        result.delivery = _schedule(actor, client, send_to, [(inv, invitee, tok) for _, invitee, inv, tok in issued])
    return result


def _shaped_rows(requests: list[InvitationRequest], send_to: str, errors: list[RowError]) -> list[tuple]:
    """(request, invitee, permissions, app code) of the rows whose fields are well-formed and not repeated."""
    rows, seen = [], {}
    for request in requests:
        row_errors, invitee, permissions = _row_errors(request, send_to)
        app_code = (request.app_code or "").strip().lower()
        if not row_errors:
            key = (app_code, invitee.company_email)
            if key in seen:
                reason = f"Duplicate of line {seen[key]} (same e-mail and application)."
                row_errors.append(RowError(request.line, "company_email", reason))
            else:
                seen[key] = request.line
        errors += row_errors
        if not row_errors:
            rows.append((request, invitee, permissions, app_code))
    return rows


def _with_applications(client: Client, rows: list[tuple], errors: list[RowError]) -> list[tuple]:
    """The rows naming one of the client's enabled applications, each with it in place of the code (one query)."""
    applications = {app.app_code: app for app in Application.objects.filter(client_id=client.pk)}
    found = []
    for request, invitee, permissions, app_code in rows:
        application = applications.get(app_code)
        if application is None:
            reason = f"Client {client.code} has no application '{app_code}'."
            errors.append(RowError(request.line, "application", reason))
        elif application.status != Application.Status.ENABLED:
            errors.append(RowError(request.line, "application", f"Application {app_code} is disabled."))
        else:
            found.append((request, invitee, permissions, application))
    return found


def _not_pending(rows: list[tuple], hashes: list[list[str]], checks, errors: list[RowError]) -> list[tuple]:
    """The rows whose invitee has no pending invitation to that application yet, each with its e-mail hash."""
    issuable = []
    for (request, invitee, permissions, application), email_hashes in zip(rows, hashes, strict=True):
        keys = [(str(application.pk), email_hash) for email_hash in email_hashes]
        pending = next((checks.pending[key] for key in keys if key in checks.pending), None)
        if pending:
            reason = f"Already has a pending invitation to {application.app_code} ({pending})."
            errors.append(RowError(request.line, "company_email", reason))
        else:
            issuable.append((request, invitee, permissions, application, email_hashes[0]))
    return issuable


def resend_invitation(
    *, actor, invitation: Invitation, invitee: Invitee, expires_in: timedelta | None = None, send_to: str = "none"
) -> str:
    """A new token for a pending or expired invitation (same id and code); the previous token stops working at once.

    The invitee's data is given again: it was never stored, so it cannot be read back. An
    expired invitation becomes pending again, if the tier has the seats for it. `send_to` e-mails
    the new link after the commit, as for `issue_invitation`; the outcome lands on the given
    invitation's `delivery`.
    """
    invitee = invitee.cleaned()
    send_to = _checked_send_to(send_to)
    if _private_address_missing(send_to, invitee):
        raise InvalidInput(
            "There is no private e-mail to send to.", code="no_private_email", fields={"private_email": ["Required."]}
        )
    given = invitation
    now = timezone.now()
    with _atomic():
        invitation = (
            Invitation.objects.select_for_update(of=("self",)).select_related("application").get(pk=invitation.pk)
        )
        if invitation.status not in (Invitation.Status.PENDING, Invitation.Status.EXPIRED):
            raise Refused(
                f"Invitation {invitation.code} is {invitation.status}; only pending or expired ones are resent."
            )
        # The client's lock, seats, keys and signing key in one round trip, as when issuing.
        context = issue_context(invitation.client_id, using=router.db_for_write(Invitation))
        client = context.client
        _check_issuable(client, invitation.application, expires_in or MIN_VALIDITY, invitation.max_uses)
        revived = invitation.status == Invitation.Status.EXPIRED
        if revived:  # back to pending: it holds its remaining uses as seats again
            needed, used = invitation.max_uses - invitation.used_count, context.seats_used
            if used + needed > client.tier.max_users:
                raise Refused(
                    f"Tier {client.tier.code} allows {client.tier.max_users} users; client {client.code} holds "
                    f"{used} seat(s), and reviving {invitation.code} needs {needed}.",
                    code="seat_limit",
                )
            invitation.status, invitation.finished_at = Invitation.Status.PENDING, None
        keys = context.keys
        if invitation.email_hash not in _email_hashes(keys, invitee.company_email):
            raise InvalidInput(
                "This is not the company e-mail the invitation was issued to.",
                code="invitee_mismatch",
                fields={"company_email": ["Not the invited address."]},
            )
        lifetime = expires_in or max(invitation.expires_at - invitation.created_at, MIN_VALIDITY)
        invitation.expires_at = now + min(lifetime, MAX_VALIDITY)
        signing_key = context.signing_key or active_signing_key()  # the latter raises: there is none
        token = tokens.encode(
            invitation=invitation,
            client=client,
            application=invitation.application,
            invitee=invitee.as_claim(),
            keys=keys,
            signing_key=signing_key,
            issued_at=now,
        )
        invitation.token_hash, invitation.kid = tokens.token_hash(token), signing_key.kid
        invitation.resend_count += 1
        with conflicts_as("This person has another pending invitation to this application; revoke one first."):
            invitation.save(update_fields=["token_hash", "kid", "expires_at", "resend_count", "status", "finished_at"])
        record(
            actor=actor,
            action="invitation.resent",
            client=client,
            target=invitation,
            changes={"expires_at": invitation.expires_at, "resend_count": invitation.resend_count, "revived": revived},
        )
        given.delivery = _schedule(actor, client, send_to, [(invitation, invitee, token)])
    return token


def revoke_invitation(*, actor, invitation: Invitation, reason: str) -> Invitation:
    """Stop an invitation from being redeemed. Safe to re-run on a revoked one."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(
            "Say why the invitation is revoked.", code="reason_required", fields={"reason": ["Required."]}
        )
    refuse_control_characters(reason=reason)
    with _atomic():
        invitation = Invitation.objects.select_for_update(of=("self",)).select_related("client").get(pk=invitation.pk)
        if invitation.status == Invitation.Status.REVOKED:
            return invitation
        if invitation.status != Invitation.Status.PENDING:
            raise Refused(f"Invitation {invitation.code} is {invitation.status}; only pending ones are revoked.")
        now = timezone.now()
        invitation.status = Invitation.Status.REVOKED
        invitation.revoked_at = invitation.finished_at = now
        invitation.revoked_by = actor_fields(actor)[2][:200]
        invitation.revoke_reason = reason[:500]
        invitation.save(update_fields=["status", "revoked_at", "finished_at", "revoked_by", "revoke_reason"])
        record(
            actor=actor,
            action="invitation.revoked",
            client=invitation.client,
            target=invitation,
            changes={"reason": reason},
        )
    return invitation


# --- Validation and redemption -------------------------------------------------------------------


def _check_against_database(invitation: Invitation | None, token: str, now) -> Invitation:
    def reject(code: str, message: str | None = None):
        return InvitationRejected(code, message, stage="database")

    if invitation is None:
        raise reject("unknown_invitation")
    if not hmac.compare_digest(invitation.token_hash, tokens.token_hash(token)):
        raise reject("hash_mismatch")
    if invitation.status == Invitation.Status.REVOKED:
        raise reject("revoked")
    if invitation.status == Invitation.Status.ACCEPTED or invitation.used_count >= invitation.max_uses:
        raise reject("already_used")
    if invitation.status == Invitation.Status.EXPIRED or invitation.expires_at <= now:
        raise reject("expired", f"The invitation expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC.")
    return invitation


def _check_client(client: Client) -> None:
    if is_erased(client):
        raise InvitationRejected("client_erased", stage="database")
    if client.status != Client.Status.ACTIVE:
        raise InvitationRejected("client_inactive", stage="database")


def validate_invitation(*, token: str) -> Invitation:
    """The invitation a token stands for, if it may be redeemed now; InvitationRejected with its code otherwise."""
    claims = tokens.decode(token)
    invitation = Invitation.objects.select_related("client", "application").filter(pk=claims["sub"]).first()
    if invitation is None:
        raise InvitationRejected("unknown_invitation", stage="database")
    _check_client(invitation.client)
    return _check_against_database(invitation, token, timezone.now())


@dataclass(frozen=True)
class Redemption:
    invitation: Invitation
    invitee: dict
    claims: dict


def redeem_invitation(*, actor, token: str) -> Redemption:
    """Use the invitation once and return the invitee's data. Runs as the token's client, under RLS.

    Called inside a tenant context (the tenant API), the token must belong to that client; the
    row lock makes concurrent redemptions queue, so a single-use token is redeemed exactly once.
    """
    claims = tokens.decode(token)
    # Inside a tenant context RLS shows only the current client: another client's token finds none.
    client = Client.objects.filter(code=claims["client"]).first()
    if in_tenant_context():
        if client is None:
            raise InvitationRejected("wrong_client", stage="database")
        return _redeem(actor, client, claims, token)
    if client is None:
        raise InvitationRejected("unknown_invitation", stage="database")
    with tenant_context(client):
        return _redeem(actor, client, claims, token)


def _redeem(actor, client: Client, claims: dict, token: str) -> Redemption:
    _check_client(client)
    now = timezone.now()
    with _atomic():
        invitation = Invitation.objects.select_for_update().filter(pk=claims["sub"], client_id=client.pk).first()
        invitation = _check_against_database(invitation, token, now)
        invitee = tokens.decrypt_invitee(claims, client_keys(client))
        invitation.used_count += 1
        fields = ["used_count"]
        if invitation.used_count >= invitation.max_uses:
            invitation.status, invitation.accepted_at, invitation.finished_at = Invitation.Status.ACCEPTED, now, now
            fields += ["status", "accepted_at", "finished_at"]
        invitation.save(update_fields=fields)
        record(
            actor=actor,
            action="invitation.redeemed",
            client=client,
            target=invitation,
            changes={"used_count": invitation.used_count, "status": invitation.status},
        )
    return Redemption(invitation, invitee, claims)


# --- Expiry and cleanup --------------------------------------------------------------------------


@dataclass
class CleanupResult:
    expired: int = 0
    purged: int = 0
    pending_expiry: int = 0
    pending_purge: int = 0
    dry_run: bool = False
    locked: bool = False


def expire_invitations(*, actor, batch_size: int = 5000, progress=None) -> int:
    """Mark overdue pending invitations expired, batch by batch: one short transaction and one audit event each."""
    done = 0
    while True:
        with _atomic(), connections[router.db_for_write(Invitation)].cursor() as cursor:
            cursor.execute(_EXPIRE_BATCH, [timezone.now(), batch_size])
            count = cursor.rowcount
            if count:
                record(
                    actor=actor,
                    action="invitation.expired",
                    target_type="invitations.invitation",
                    target_label=f"{count} overdue invitation(s)",
                    changes={"expired": count},
                )
        done += count
        if progress:
            progress(done)
        if count < batch_size:
            return done


def cleanup_invitations(
    *,
    actor,
    retention_days: int | None = None,
    batch_size: int = 5000,
    dry_run: bool = False,
    progress=None,
) -> CleanupResult:
    """Expire overdue invitations and delete finished ones older than the retention period.

    Safe to run twice at once (`single_run`: the second run returns `locked` at once), resumable
    (each batch commits with an audit event saying how many rows it expired or deleted), and
    summarised by one more event per run.
    """
    retention = timedelta(days=settings.FLOWS_INVITATION_RETENTION_DAYS if retention_days is None else retention_days)
    if retention_days is not None and not 0 <= retention_days <= 3650:
        raise InvalidInput("The retention period is between 0 and 3650 days.", code="invalid_retention")
    alias = router.db_for_write(Invitation)
    now = timezone.now()
    result = CleanupResult(dry_run=dry_run)
    if dry_run:
        result.pending_expiry = Invitation.objects.filter(status=Invitation.Status.PENDING, expires_at__lte=now).count()
        result.pending_purge = (
            Invitation.objects.exclude(status=Invitation.Status.PENDING).filter(finished_at__lt=now - retention).count()
        )
        return result
    with single_run(CLEANUP_LOCK) as acquired:
        if not acquired:
            result.locked = True
            return result
        result.expired = expire_invitations(
            actor=actor, batch_size=batch_size, progress=(lambda n: progress("expired", n)) if progress else None
        )
        cutoff = timezone.now() - retention
        while True:
            # Each batch records what it deleted in its own transaction: a run killed halfway
            # leaves a trail of exactly the batches that committed.
            with _atomic(), connections[alias].cursor() as cursor:
                cursor.execute(_PURGE_BATCH, [cutoff, batch_size])
                count = cursor.rowcount
                if count:
                    record(
                        actor=actor,
                        action="invitation.purged",
                        target_type="invitations.invitation",
                        target_label=f"{count} finished invitation(s)",
                        changes={"purged": count, "finished_before": cutoff, "retention_days": retention.days},
                    )
            result.purged += count
            if progress:
                progress("purged", result.purged)
            if count < batch_size:
                break
        with _atomic():
            record(
                actor=actor,
                action="invitation.cleanup",
                target_type="invitations.cleanup",
                target_label="cleanup_invitations",
                changes={"expired": result.expired, "purged": result.purged, "retention_days": retention.days},
            )
    return result


# Set-based batches: the partial indexes on pending expiry and finished_at find each batch;
# SKIP LOCKED lets a redemption in flight keep its row.
_EXPIRE_BATCH = f"""
UPDATE {Invitation._meta.db_table} SET status = 'expired', finished_at = now()
WHERE id IN (
    SELECT id FROM {Invitation._meta.db_table}
    WHERE status = 'pending' AND expires_at <= %s
    LIMIT %s FOR UPDATE SKIP LOCKED
)"""  # noqa: S608 - table name from the model, values are parameters

_PURGE_BATCH = f"""
DELETE FROM {Invitation._meta.db_table}
WHERE id IN (
    SELECT id FROM {Invitation._meta.db_table}
    WHERE status <> 'pending' AND finished_at < %s
    LIMIT %s FOR UPDATE SKIP LOCKED
)"""  # noqa: S608 - table name from the model, values are parameters
