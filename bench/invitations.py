"""Invitation tokens and cleanup: how close to the raw crypto, and to one plain statement?

Run by hand, never from the test suite:

    make bench-invitations              # or: .venv/bin/python bench/invitations.py
    .venv/bin/python bench/invitations.py --ops 2000 --rounds 15 --invitations 1000000

1. Throughput, interleaved rounds, medians, against a raw loop on the same claims (PyJWT EdDSA
   and cryptography AES-GCM, no vault, no database):
   - validate, stateless part: `tokens.decode` (published keys cached) vs `jwt.decode`
     with the key in hand. Target: at least 0.8 of the raw throughput.
   - token building: `tokens.encode` (vault envelope + signing) vs AES-GCM + `jwt.encode`.
   - issue through the service (validation, seat check under the client lock, insert, audit
     event: the database included) vs the same raw loop, for scale.
2. Issuing at scale (`--existing`, default 10,000 invitations already held by the client): the
   single path as it was (13 statements: seat count, duplicate check, code check and audit
   savepoint each on their own), as the first round of issue 12 left it (8 statements: one
   checks query, its seat count a sum over the client's invitations), the single path now
   (`issue_invitation`: 4 statements and the transaction), and a batch (`issue_invitations`,
   `--batch` rows, default 1,000) per row — interleaved rounds, medians.
3. `cleanup_invitations` expiring and then purging N invitations (default 1,000,000, loaded
   with COPY) against one plain `UPDATE` and one plain `DELETE` of the same rows (run in a
   transaction that is rolled back, then vacuumed away). Target: at most 2 times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import drop_database, interleaved, say, setup_django


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  .venv/bin/python bench/invitations.py --invitations 1000000",
    )
    parser.add_argument("--ops", type=int, default=1000, help="operations per round and path (default 1000)")
    parser.add_argument("--rounds", type=int, default=11, help="timed rounds (default 11)")
    parser.add_argument("--issues", type=int, default=300, help="service issues to time (default 300)")
    parser.add_argument("--invitations", type=int, default=1_000_000, help="rows for the cleanup (default 1000000)")
    parser.add_argument("--clients", type=int, default=100, help="clients owning them (default 100)")
    parser.add_argument("--batch-size", type=int, default=5000, help="cleanup batch size (default 5000)")
    parser.add_argument(
        "--database", default="flows_bench_invitations", help="database (default flows_bench_invitations)"
    )
    parser.add_argument("--existing", type=int, default=10_000, help="invitations the issuing client holds (10000)")
    parser.add_argument("--batch", type=int, default=1000, help="rows per batch issue (default 1000)")
    parser.add_argument("--only-issue", action="store_true", help="run part 2 only (issuing at scale)")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database afterwards")
    args = parser.parse_args()
    for name, least in (("ops", 10), ("rounds", 3), ("issues", 10), ("invitations", 1), ("clients", 1)):
        if getattr(args, name) < least:
            parser.error(f"--{name} must be at least {least}")
    return args


# --- 1. Throughput -------------------------------------------------------------------------------


def clients_with_applications(count: int):
    from clients import services as client_services  # noqa: PLC0415
    from clients.models import Application, Client  # noqa: PLC0415

    codes = [f"bench-i{n:04d}" for n in range(count)]
    have = set(Client.objects.filter(code__in=codes).values_list("code", flat=True))
    for code in codes:
        if code not in have:
            client = client_services.create_client(
                actor=None, code=code, legal_name=code, domain=f"{code}.bench.test", region="EU", tier="enterprise"
            )
            client_services.configure_application(actor=None, client=client, app_code="onboarding")
    clients = list(Client.objects.filter(code__in=codes).select_related("tier").order_by("code"))
    apps = {app.client_id: app for app in Application.objects.filter(client__in=clients, app_code="onboarding")}
    return clients, apps


def throughput(args, client, application) -> dict:
    import jwt  # noqa: PLC0415
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415
    from django.utils import timezone  # noqa: PLC0415

    from invitations import services, tokens  # noqa: PLC0415
    from invitations.models import Invitation  # noqa: PLC0415
    from vault import services as vault_services  # noqa: PLC0415
    from vault.keys import new_data_key  # noqa: PLC0415
    from vault.selectors import active_signing_key, client_keys  # noqa: PLC0415
    from vault.signing import _private_key  # noqa: PLC0415

    if not active_signing_key_exists():
        vault_services.rotate_signing_key(actor=None)
    signing_key = active_signing_key()
    private = _private_key(signing_key.kid, bytes(signing_key.wrapped_private_key))
    public = private.public_key()
    keys = client_keys(client)
    raw_cipher = AESGCM(new_data_key())
    invitee = {"name": "Ada Lovelace", "company_email": "ada@acme.example", "private_email": "ada@home.example"}
    invitation = Invitation(client=client, application=application, expires_at=timezone.now() + timedelta(days=7))
    now = timezone.now()

    def ours_encode():
        for _ in range(args.ops):
            tokens.encode(invitation=invitation, client=client, application=application, invitee=invitee, keys=keys,
                          signing_key=signing_key, issued_at=now)  # fmt: skip

    token = tokens.encode(invitation=invitation, client=client, application=application, invitee=invitee, keys=keys,
                          signing_key=signing_key, issued_at=now)  # fmt: skip
    claims = jwt.decode(token, options={"verify_signature": False})

    def raw_encode():
        for _ in range(args.ops):
            nonce = os.urandom(12)
            data = raw_cipher.encrypt(nonce, json.dumps(invitee).encode(), claims["sub"].encode())
            jwt.encode({**claims, "invitee": {"data": (nonce + data).hex()}}, private, algorithm="EdDSA",
                       headers={"kid": signing_key.kid})  # fmt: skip

    tokens.public_keys.refresh()

    def ours_decode():
        for _ in range(args.ops):
            tokens.decode(token)

    def raw_decode():
        for _ in range(args.ops):
            jwt.decode(token, public, algorithms=["EdDSA"], audience=claims["aud"], issuer=claims["iss"])

    results = {
        "validate (stateless)": interleaved(args.rounds, {"ours": ours_decode, "raw": raw_decode}),
        "build token": interleaved(args.rounds, {"ours": ours_encode, "raw": raw_encode}),
    }

    emails = iter(f"person{n}-{uuid.uuid4().hex[:6]}@bench.test" for n in range(10**9))
    began = time.perf_counter()
    for _ in range(args.issues):
        services.issue_invitation(actor=None, client=client, application=application,
                                  invitee=services.Invitee("Bench Person", next(emails)))  # fmt: skip
    issue_each = (time.perf_counter() - began) / args.issues
    raw_each = results["build token"]["raw"] / args.ops
    results["issue (service, database)"] = {"ours": issue_each * args.ops, "raw": raw_each * args.ops}
    return results


def active_signing_key_exists() -> bool:
    from vault.models import SigningKey  # noqa: PLC0415

    return SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).exists()


# --- 2. Issuing at scale -----------------------------------------------------------------------


def legacy_issue(client, application, invitee, expires_in=timedelta(days=7)):
    """`issue_invitation` as it was before the batch work, statement for statement, for the side-by-side figure."""
    from django.db import transaction  # noqa: PLC0415
    from django.utils import timezone  # noqa: PLC0415

    from audit.services import actor_fields, record  # noqa: PLC0415
    from clients.selectors import get_client  # noqa: PLC0415
    from invitations import services, tokens  # noqa: PLC0415
    from invitations.models import Invitation  # noqa: PLC0415
    from invitations.selectors import seats_used  # noqa: PLC0415
    from vault.selectors import active_signing_key, client_keys  # noqa: PLC0415

    invitee = invitee.cleaned()
    now = timezone.now()
    with services._atomic():
        client = get_client(str(client.pk), for_update=True)
        services._check_issuable(client, application, expires_in, 1)
        assert seats_used(client) + 1 <= client.tier.max_users
        keys = client_keys(client)
        email_hashes = services._email_hashes(keys, invitee.company_email)
        assert not Invitation.objects.filter(
            client_id=client.pk, application_id=application.pk, status="pending", email_hash__in=email_hashes
        ).exists()
        signing_key = active_signing_key()
        while True:
            code = services._random_code()
            if not Invitation.objects.filter(code=code).exists():
                break
        invitation = Invitation(client=client, application=application, code=code, permissions=[], restrictions={},
                                expires_at=now + expires_in, email_hash=email_hashes[0], kid=signing_key.kid,
                                created_by=actor_fields(None)[2])  # fmt: skip
        token = tokens.encode(
            invitation=invitation, client=client, application=application, invitee=invitee.as_claim(), keys=keys,
            signing_key=signing_key, issued_at=now,
        )  # fmt: skip
        invitation.token_hash = tokens.token_hash(token)
        invitation.save(force_insert=True)
        with transaction.atomic(using="console"):  # record() opened a savepoint of its own then
            record(actor=None, action="invitation.issued", client=client, target=invitation,
                   changes={"application": application.app_code, "expires_at": invitation.expires_at})  # fmt: skip
    return invitation, token


_PREVIOUS_CHECKS = """
SELECT
  (SELECT coalesce(sum(CASE WHEN status = 'pending' THEN max_uses ELSE used_count END), 0)
     FROM invitations_invitation WHERE client_id = %(client)s),
  ARRAY(SELECT email_hash FROM invitations_invitation
         WHERE client_id = %(client)s AND application_id = ANY(%(applications)s) AND status = 'pending'
           AND email_hash = ANY(%(hashes)s) AND email_hash <> ''),
  ARRAY(SELECT code FROM invitations_invitation WHERE code = ANY(%(codes)s)),
  (SELECT kid FROM vault_signingkey WHERE status = 'active'),
  (SELECT wrapped_private_key FROM vault_signingkey WHERE status = 'active')
"""


def previous_issue(client, application, invitee, expires_in=timedelta(days=7)):
    """`issue_invitation` as the first round of issue 12 left it (8 statements), for the side-by-side figure: the
    client lock, the data keys, one checks query whose seat count sums every invitation of the client, the insert,
    the audit event."""
    from django.db import connections  # noqa: PLC0415
    from django.utils import timezone  # noqa: PLC0415

    from audit.services import actor_fields, record  # noqa: PLC0415
    from clients.selectors import get_client  # noqa: PLC0415
    from invitations import services, tokens  # noqa: PLC0415
    from invitations.models import Invitation  # noqa: PLC0415
    from vault.models import SigningKey  # noqa: PLC0415
    from vault.selectors import client_keys  # noqa: PLC0415

    invitee = invitee.cleaned()
    now = timezone.now()
    with services._atomic():
        client = get_client(str(client.pk), for_update=True)
        services._check_issuable(client, application, expires_in, 1)
        keys = client_keys(client)
        email_hashes = services._email_hashes(keys, invitee.company_email)
        code = services._random_code()
        with connections["console"].cursor() as cursor:
            cursor.execute(_PREVIOUS_CHECKS, {"client": client.pk, "applications": [application.pk],
                                              "hashes": email_hashes, "codes": [code]})  # fmt: skip
            seats, pending, taken, kid, wrapped = cursor.fetchone()
        assert seats + 1 <= client.tier.max_users and not pending and not taken
        signing_key = SigningKey(kid=kid, status="active", wrapped_private_key=bytes(wrapped))
        invitation = Invitation(client=client, application=application, code=code, permissions=[], restrictions={},
                                expires_at=now + expires_in, email_hash=email_hashes[0], kid=kid,
                                created_by=actor_fields(None)[2])  # fmt: skip
        token = tokens.encode(
            invitation=invitation, client=client, application=application, invitee=invitee.as_claim(), keys=keys,
            signing_key=signing_key, issued_at=now,
        )  # fmt: skip
        invitation.token_hash = tokens.token_hash(token)
        invitation.save(force_insert=True)
        record(actor=None, action="invitation.issued", client=client, target=invitation,
               changes={"application": application.app_code, "expires_at": invitation.expires_at})  # fmt: skip
    return invitation, token


def load_existing(client, application, count: int) -> None:
    """`count` invitations held by `client`: a fifth pending, the rest expired (so the seats leave room to issue)."""
    from django.utils import timezone  # noqa: PLC0415

    from invitations.models import Invitation  # noqa: PLC0415

    have = Invitation.objects.filter(client_id=client.pk).count()
    now = timezone.now()
    rows = [
        Invitation(client=client, application=application, code=f"INV-{uuid.uuid4().hex[:8].upper()}",
                   token_hash=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
                   status="pending" if n % 5 == 0 else "expired", expires_at=now + timedelta(days=7),
                   email_hash=hashlib.sha256(uuid.uuid4().bytes).hexdigest(), kid="bench", created_by="bench")
        for n in range(max(count - have, 0))
    ]  # fmt: skip
    Invitation.objects.bulk_create(rows, batch_size=2000)
    vacuum(Invitation._meta.db_table)


def issuing_at_scale(args, client, application) -> dict:
    """Seconds per issued invitation, medians of interleaved rounds: old single (13 statements), previous single
    (8: the seat sum in one checks query), new single (the lock with the counter's seats, the insert with its
    duplicate check, the audit event), and a batch per row."""
    from django.db import connections  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415

    from invitations import services  # noqa: PLC0415

    load_existing(client, application, args.existing)
    emails = (f"p{n}-{uuid.uuid4().hex[:8]}@bench.test" for n in range(10**9))
    singles = max(args.issues // 3, 10)

    def old_single():
        for _ in range(singles):
            legacy_issue(client, application, services.Invitee("Bench Person", next(emails)))

    def previous_single():
        for _ in range(singles):
            previous_issue(client, application, services.Invitee("Bench Person", next(emails)))

    def new_single():
        for _ in range(singles):
            services.issue_invitation(actor=None, client=client, application=application,
                                      invitee=services.Invitee("Bench Person", next(emails)))  # fmt: skip

    def one_batch():
        requests = [services.InvitationRequest(n + 2, services.Invitee("Bench Person", next(emails)), "onboarding")
                    for n in range(args.batch)]  # fmt: skip
        result = services.issue_invitations(actor=None, client=client, requests=requests)
        assert len(result.issued) == args.batch, result.errors[:3]

    statements = {}
    for name, run in (("old single", lambda: legacy_issue(client, application, services.Invitee("B P", next(emails)))),
                      ("previous single",
                       lambda: previous_issue(client, application, services.Invitee("B P", next(emails)))),
                      ("new single", lambda: services.issue_invitation(
                          actor=None, client=client, application=application,
                          invitee=services.Invitee("B P", next(emails))))):  # fmt: skip
        with CaptureQueriesContext(connections["console"]) as queries:
            run()
        statements[name] = len(queries.captured_queries)

    def round_trips():
        with connections["console"].cursor() as cursor:
            for _ in range(singles * 10):
                cursor.execute("SELECT 1")

    rounds = max(args.rounds // 3, 3)
    medians = interleaved(
        rounds,
        {"old single": old_single, "previous single": previous_single, "new single": new_single, "batch": one_batch,
         "round trip": round_trips},
    )  # fmt: skip
    return {
        "per_op": {
            "old single": medians["old single"] / singles,
            "previous single": medians["previous single"] / singles,
            "new single": medians["new single"] / singles,
            "batch per row": medians["batch"] / args.batch,
        },
        "batch": medians["batch"],
        "statements": statements,
        "round_trip": medians["round trip"] / (singles * 10),
        "rounds": rounds,
        "singles": singles,
    }


# --- 3. Cleanup ----------------------------------------------------------------------------------


def load_invitations(args, clients, apps) -> None:
    from django.db import connections, transaction  # noqa: PLC0415

    from invitations.models import Invitation  # noqa: PLC0415

    table = Invitation._meta.db_table
    started = time.perf_counter()
    overdue = "2026-01-01 00:00:00+00"
    with transaction.atomic(using="default"), connections["default"].cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")  # COPY FROM is refused under RLS
        cursor.execute(f"TRUNCATE {table}")
        # TRUNCATE fires no row triggers: the seat counter starts again from nothing, and COPY's insert trigger
        # fills it (issuing reads its seats from there).
        cursor.execute("TRUNCATE reports_clientseats")
        columns = (
            "id, client_id, application_id, code, token_hash, status, max_uses, used_count, permissions, "
            "restrictions, expires_at, email_hash, kid, created_by, created_at, resend_count, revoked_by, revoke_reason"
        )
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for n in range(args.invitations):
                client = clients[n % len(clients)]
                copy.write_row(
                    (uuid.uuid4(), client.pk, apps[client.pk].pk, f"INV-{n:08d}", hashlib.sha256(b"%d" % n).hexdigest(),
                     "pending", 1, 0, "{}", "{}", overdue, "", "bench", "bench", overdue, 0, "", "")
                )  # fmt: skip
                if (n + 1) % 250_000 == 0:
                    say(f"  {n + 1:,} invitations copied ({time.perf_counter() - started:.0f} s)")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE waits for no deferred FK check
        cursor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    vacuum(table)
    say(f"  loaded in {time.perf_counter() - started:.1f} s")


def vacuum(table: str) -> None:
    from django.db import connections  # noqa: PLC0415

    with connections["default"].cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")


def cleanup_timing(args) -> dict:
    from django.db import connections, transaction  # noqa: PLC0415

    from invitations import services  # noqa: PLC0415
    from invitations.models import Invitation  # noqa: PLC0415

    table = Invitation._meta.db_table
    # The plain statements, as the console role, in one transaction rolled back afterwards.
    with transaction.atomic(using="console"), connections["console"].cursor() as cursor:
        began = time.perf_counter()
        cursor.execute(
            f"UPDATE {table} SET status = 'expired', finished_at = now() "
            "WHERE status = 'pending' AND expires_at <= now()"
        )
        updated, plain_update = cursor.rowcount, time.perf_counter() - began
        began = time.perf_counter()
        cursor.execute(f"DELETE FROM {table} WHERE status <> 'pending' AND finished_at <= now()")
        deleted, plain_delete = cursor.rowcount, time.perf_counter() - began
        transaction.set_rollback(True, using="console")
    assert updated == deleted == args.invitations, (updated, deleted)
    vacuum(table)
    shown = {"at": 0.0}

    def progress(stage, done):
        if time.perf_counter() - shown["at"] > 10:
            shown["at"] = time.perf_counter()
            say(f"  cleanup: {stage} {done:,}")

    began = time.perf_counter()
    expired = services.expire_invitations(actor=None, batch_size=args.batch_size)
    expire_time = time.perf_counter() - began
    began = time.perf_counter()
    result = services.cleanup_invitations(actor=None, retention_days=0, batch_size=args.batch_size, progress=progress)
    purge_time = time.perf_counter() - began
    assert expired == result.purged == args.invitations, (expired, result)
    return {"update": plain_update, "delete": plain_delete, "expire": expire_time, "purge": purge_time}


def report_issuing(args, scale: dict) -> None:
    per_op = scale["per_op"]
    say("")
    say(f"issuing with {args.existing:,} invitations held by the client ({scale['rounds']} interleaved rounds: "
        f"{scale['singles']} single issues per path, one batch of {args.batch:,})")  # fmt: skip
    say(f"{'path':<16} {'ms per invitation':>18} {'statements':>11} {'vs old single':>14} {'vs previous':>12}")
    for name, seconds in per_op.items():
        count = scale["statements"].get(name, "")
        say(f"{name:<16} {seconds * 1000:>18.2f} {count!s:>11} {per_op['old single'] / seconds:>13.1f}x"
            f" {per_op['previous single'] / seconds:>11.1f}x")  # fmt: skip
    round_trip = scale["round_trip"] * 1000
    say(f"one batch of {args.batch:,}: {scale['batch']:.2f} s; one round trip (SELECT 1): {round_trip:.2f} ms")
    say("")


def main() -> None:
    args = parse_args()
    setup_django(args.database)
    say(f"clients and applications ({args.clients}) …")
    clients, apps = clients_with_applications(args.clients)
    client, application = clients[0], apps[clients[0].pk]
    if not active_signing_key_exists():
        from vault import services as vault_services  # noqa: PLC0415

        vault_services.rotate_signing_key(actor=None)
    say(
        f"issuing at scale: {args.existing:,} existing invitations; old single, new single, batches of {args.batch:,} …"
    )
    scale = issuing_at_scale(args, client, application)
    report_issuing(args, scale)
    if args.only_issue:
        if args.drop:
            drop_database(args.database)
        return
    say(f"throughput: {args.rounds} rounds x {args.ops:,} tokens per path; {args.issues} service issues …")
    speed = throughput(args, client, application)
    say(f"cleanup: loading {args.invitations:,} overdue invitations …")
    load_invitations(args, clients, apps)
    say("cleanup: plain UPDATE + DELETE (rolled back), then cleanup_invitations …")
    cleanup = cleanup_timing(args)

    say("")
    say(f"{'operation':<28} {'ours µs/op':>11} {'raw µs/op':>10} {'raw/ours':>9}")
    for operation, medians in speed.items():
        ours, raw = (medians[name] / args.ops * 1e6 for name in ("ours", "raw"))
        say(f"{operation:<28} {ours:>11.1f} {raw:>10.1f} {raw / ours:>9.2f}")
    say("raw/ours = our throughput as a fraction of the raw loop's. Target for validation: at least 0.8.")
    say("")
    ours, plain = cleanup["expire"] + cleanup["purge"], cleanup["update"] + cleanup["delete"]
    say(
        f"cleanup of {args.invitations:,} invitations (batches of {args.batch_size:,}): "
        f"expire {cleanup['expire']:.1f} s "
        f"+ purge {cleanup['purge']:.1f} s = {ours:.1f} s; plain UPDATE {cleanup['update']:.1f} s + DELETE "
        f"{cleanup['delete']:.1f} s = {plain:.1f} s; ratio {ours / plain:.2f} (target at most 2)"
    )
    if args.drop:
        drop_database(args.database)


if __name__ == "__main__":
    main()
