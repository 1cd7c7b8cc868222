"""What does the vault cost over raw AES-GCM, and how fast does `rewrap` move 100,000 secrets?

Run by hand, never from the test suite:

    make bench-vault                    # or: .venv/bin/python bench/vault.py
    .venv/bin/python bench/vault.py --ops 5000 --rounds 30 --secrets 100000 --clients 100

1. Throughput of 1 KB values through the vault API (`ClientKeys.encrypt` / `.decrypt`, with the
   client's data key already unwrapped — the "cached data key" case) against a bare
   `cryptography` AES-GCM loop (random nonce, fixed associated data), interleaved in rounds,
   medians compared. Target: at most 1.5 times.
2. `rewrap` of N secrets (default 100,000 over 100 clients) after every client got a new data
   key version, against the crypto floor: decrypting and re-encrypting the same values in memory.
   The secrets are loaded with COPY into a database of its own (`flows_bench_vault`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import drop_database, interleaved, say, setup_django

VALUE_BYTES = 1024


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  .venv/bin/python bench/vault.py --secrets 100000 --clients 100",
    )
    parser.add_argument("--ops", type=int, default=5000, help="operations per round and path (default 5000)")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--secrets", type=int, default=100_000, help="secrets to rewrap (default 100000)")
    parser.add_argument("--clients", type=int, default=100, help="clients owning them (default 100)")
    parser.add_argument("--batch-size", type=int, default=500, help="rewrap batch size (default 500)")
    parser.add_argument("--database", default="flows_bench_vault", help="database to use (default flows_bench_vault)")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database afterwards")
    args = parser.parse_args()
    for name, least in (("ops", 100), ("rounds", 3), ("secrets", 1), ("clients", 1), ("batch_size", 1)):
        if getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')} must be at least {least}")
    return args


# --- 1. Throughput ---------------------------------------------------------------------------


def throughput(args) -> dict:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

    from vault.keys import ClientKeys, data_key_context, new_data_key, wrap  # noqa: PLC0415

    client_id, raw = uuid.uuid4(), new_data_key()
    keys = ClientKeys(
        client_id=client_id,
        client_code="bench",
        wrapped={1: wrap(raw, data_key_context(client_id, 1))[0]},
        active_version=1,
        erased=False,
    )
    cipher = AESGCM(raw)
    value = os.urandom(VALUE_BYTES)
    record_ids = [str(uuid.uuid4()) for _ in range(args.ops)]
    aad = b"flows-vault\x00" + bytes(60)  # the same length as the vault's associated data, fixed
    keys.encrypt(value, purpose="secret", record_id="warm-up")  # unwraps the data key once: the cached case

    def vault_encrypt():
        return [keys.encrypt(value, purpose="secret", record_id=rid)[0] for rid in record_ids]

    def raw_encrypt():  # the same loop shape as the vault's: one value per record
        out = []
        for _rid in record_ids:
            nonce = os.urandom(12)
            out.append(nonce + cipher.encrypt(nonce, value, aad))
        return out

    vault_blobs, raw_blobs = vault_encrypt(), raw_encrypt()

    def vault_decrypt():
        for blob, rid in zip(vault_blobs, record_ids, strict=True):
            keys.decrypt(blob, purpose="secret", record_id=rid)

    def raw_decrypt():
        for blob, _rid in zip(raw_blobs, record_ids, strict=True):
            cipher.decrypt(blob[:12], blob[12:], aad)

    return {
        "encrypt": interleaved(args.rounds, {"vault": vault_encrypt, "raw": raw_encrypt}),
        "decrypt": interleaved(args.rounds, {"vault": vault_decrypt, "raw": raw_decrypt}),
    }


# --- 2. Rewrap -------------------------------------------------------------------------------


def prepare_secrets(args) -> list:
    """Clients (through the service: each gets data key v1) and secrets (COPY), fresh for every run."""
    from django.db import connections, transaction  # noqa: PLC0415

    from clients import services as client_services  # noqa: PLC0415
    from clients.models import Client  # noqa: PLC0415
    from vault.models import Secret  # noqa: PLC0415
    from vault.selectors import client_keys  # noqa: PLC0415

    codes = [f"bench-v{n:04d}" for n in range(args.clients)]
    existing = set(Client.objects.filter(code__in=codes).values_list("code", flat=True))
    for code in codes:
        if code not in existing:
            client_services.create_client(
                actor=None, code=code, legal_name=code, domain=f"{code}.bench.test", region="EU", tier="enterprise"
            )
    clients = list(Client.objects.filter(code__in=codes).order_by("code"))
    table = Secret._meta.db_table
    started = time.perf_counter()
    with transaction.atomic(using="default"), connections["default"].cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")  # COPY FROM is refused under RLS
        cursor.execute(f"TRUNCATE {table}")
        columns = (
            "id, client_id, name, provider, secret_type, ciphertext, data_key_version, description, tags, "
            "is_active, usage_count, created_at, updated_at"
        )
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for n in range(args.secrets):
                client = clients[n % len(clients)]
                if n < len(clients):
                    client.keys = client_keys(client)
                secret_id = uuid.uuid4()
                blob, version = client.keys.encrypt(os.urandom(VALUE_BYTES), purpose="secret", record_id=str(secret_id))
                copy.write_row(
                    (secret_id, client.pk, f"s{n}", f"p{n}", "api_key", blob, version, "", "{}", True, 0,
                     "now", "now")
                )  # fmt: skip
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE waits for no deferred FK check
        cursor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    with connections["default"].cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")
    say(f"  {args.secrets:,} secrets over {len(clients)} clients loaded in {time.perf_counter() - started:.1f} s")
    return clients


def rewrap_timing(args) -> dict:
    from vault import services  # noqa: PLC0415
    from vault.models import Secret  # noqa: PLC0415
    from vault.selectors import client_keys  # noqa: PLC0415

    clients = prepare_secrets(args)
    for client in clients:
        services.create_data_key(actor=None, client=client)

    # The crypto floor: the same decrypt + encrypt, in memory, no database.
    rows = list(Secret.objects.values_list("client_id", "id", "ciphertext"))
    keys = {client.pk: client_keys(client) for client in clients}
    began = time.perf_counter()
    for client_id, secret_id, blob in rows:
        value = keys[client_id].decrypt(bytes(blob), purpose="secret", record_id=str(secret_id))
        keys[client_id].encrypt(value, purpose="secret", record_id=str(secret_id))
    floor = time.perf_counter() - began

    shown = {"at": 0.0}

    def progress(done, total):
        now = time.perf_counter()
        if now - shown["at"] > 5 or done == total:
            shown["at"] = now
            say(f"  rewrap: {done:,} / {total:,}")

    began = time.perf_counter()
    result = services.rewrap(actor=None, batch_size=args.batch_size, progress=progress)
    elapsed = time.perf_counter() - began
    assert result["pending"] == 0 and result["rewrapped"] == args.secrets, result
    return {"floor": floor, "rewrap": elapsed, "rows": len(rows)}


def main() -> None:
    args = parse_args()
    setup_django(args.database)
    say(f"throughput: {args.rounds} rounds x {args.ops:,} operations of {VALUE_BYTES} bytes, per path …")
    speed = throughput(args)
    say(f"rewrap: {args.secrets:,} secrets …")
    rewrap = rewrap_timing(args)

    say("")
    say(f"{'operation':<10} {'vault µs/op':>12} {'raw µs/op':>10} {'ratio':>6}")
    for operation, medians in speed.items():
        vault_us, raw_us = (medians[name] / args.ops * 1e6 for name in ("vault", "raw"))
        say(f"{operation:<10} {vault_us:>12.2f} {raw_us:>10.2f} {vault_us / raw_us:>6.2f}")
    say("ratio = vault API (cached data key) / raw cryptography AES-GCM, medians of interleaved rounds. Target ≤ 1.5.")
    say("")
    per_second = rewrap["rows"] / rewrap["rewrap"]
    say(
        f"rewrap of {rewrap['rows']:,} secrets: {rewrap['rewrap']:.1f} s ({per_second:,.0f} secrets/s, batches of "
        f"{args.batch_size}); crypto alone {rewrap['floor']:.2f} s; ratio {rewrap['rewrap'] / rewrap['floor']:.1f}x"
    )
    if args.drop:
        drop_database(args.database)


if __name__ == "__main__":
    main()
