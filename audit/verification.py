"""Verifying the audit trail: walk each chain in order, name every edited, deleted, inserted, reordered or forged event.

A full walk (and --client, --since) checks in two halves, in one repeatable-read snapshot: every
event's mac and hash on its own, streamed off the disk in physical order by COPY (audit.fastcheck,
in worker processes when there are many), and the chains' structure (seq gaps and order, links,
heads, checkpoints) by one SQL query with window functions that returns only the rows that do not
follow their predecessor, plus each chain's last one. Chains with a finding there, or with legacy
unkeyed events, are then walked in seq order as below, which names each problem. --resume, and
`exact=True`, walk every chain that way: read in (client, chain, seq) order through a server-side
cursor (or from an exported JSON Lines file) with one event of look-ahead. Memory stays bounded
whatever the trail's length either way. What each finding means:

- edited: the event's mac verifies (its hash was issued with the audit key) but its fields no
  longer hash to it: someone changed the row afterwards.
- forged: the mac does not verify, names a key that is not configured, or is missing after the
  chain's first keyed event: the row was not written by `record()` with the audit key.
- inserted: the next event links past it (to the event before it), or it lies beyond the head.
- deleted: a gap in `seq` where the link breaks, or a head naming events that are gone.
- reordered: two neighbours whose links run the other way, or a `seq` out of its place.
- broken link: the link breaks with no gap to explain it.
- rewritten / truncated: with signed checkpoints, an event whose hash differs from the one a
  checkpoint signed, or a chain shorter than a checkpoint recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.db.models.sql.constants import MULTI

from audit import fastcheck, keys
from audit.models import AuditEvent, ChainHead, Checkpoint
from audit.selectors import CHUNK_SIZE, EVENT_FIELDS, copy_blocks
from audit.services import GENESIS_HASH, checkpoint_message, event_hash, hashed_fields


@dataclass(frozen=True)
class Problem:
    kind: str
    chain: str
    event_id: int | None
    seq: int | None
    detail: str

    def line(self) -> str:
        if self.event_id is None:
            return f"{self.kind}: chain {self.chain}: {self.detail}"
        return f"{self.kind}: event {self.event_id} (chain {self.chain}, seq {self.seq}): {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "chain": self.chain,
            "event_id": self.event_id,
            "seq": self.seq,
            "detail": self.detail,
        }


@dataclass
class Summary:
    chains: int = 0
    events: int = 0
    legacy_unkeyed: int = 0
    checkpoints: int = 0


@dataclass(frozen=True)
class SignedCheckpoint:
    client_id: str | None
    chain: str
    seq: int
    hash: str
    signed_at: str
    key_id: str
    signature: str

    def message(self) -> bytes:
        return checkpoint_message(
            self.client_id, self.chain, self.seq, self.hash, signed_at=self.signed_at, key_id=self.key_id
        )


class ChainWalker:
    """Checks one chain's events, given in seq order, against the keys, its head and its checkpoints."""

    def __init__(self, chain: str, *, emit: Callable[[Problem], None], ring, anchor: tuple[int, str] | None):
        self.chain = chain
        self.emit = emit
        # One HMAC context per key, its key already absorbed: each event only copies it (verify_audit's hot path).
        self.macs = {key.id: hmac.new(key.key, digestmod=hashlib.sha256) for key in ring.keys}
        # (seq, hash) the first event must follow; None when the walk starts mid-chain (--since).
        self.anchor = anchor
        self.keyed_seen = False
        self.legacy = 0
        self.first_seq: int | None = None
        self.last: tuple[int, str] | None = anchor

    def _problem(self, kind: str, event: dict | None, detail: str) -> None:
        self.emit(Problem(kind, self.chain, event and event["id"], event and event["seq"], detail))

    def walk(self, events: Iterable[dict]) -> None:
        events = iter(events)
        current = next(events, None)
        if current is not None and self.anchor is None:
            self.anchor = (current["seq"] - 1, current["prev_hash"])
        expected_seq, expected = self.anchor or (0, GENESIS_HASH)
        while current is not None:
            following = next(events, None)
            if self.first_seq is None:
                self.first_seq = current["seq"]
            skipped = following is not None and following["prev_hash"] == expected
            if skipped and current["prev_hash"] != expected and current["prev_hash"] == following["hash"]:
                self._problem("reordered", current, f"its seq puts it before event {following['id']}, its link after")
                self._check_authentic(following)
                self._check_authentic(current)
                expected_seq, expected = max(current["seq"], following["seq"]), current["hash"]
                self.last = (expected_seq, expected)
                current = next(events, None)
                continue
            if skipped:
                # The next event links to the one before this: this one was slipped in between.
                self._problem("inserted", current, "the next event links past it")
                expected_seq = current["seq"]
                current = following
                continue
            if current["prev_hash"] != expected:
                if current["seq"] > expected_seq + 1:
                    missing = f"{expected_seq + 1}" + (
                        f"-{current['seq'] - 1}" if current["seq"] > expected_seq + 2 else ""
                    )
                    self._problem("deleted", current, f"seq {missing} missing before it")
                else:
                    self._problem("broken link", current, f"it does not link to the event at seq {expected_seq}")
            elif current["seq"] != expected_seq + 1:
                self._problem(
                    "reordered", current, f"its seq is {current['seq']}, its link puts it at {expected_seq + 1}"
                )
            self._check_authentic(current)
            expected_seq, expected = current["seq"], current["hash"]
            self.last = (expected_seq, expected)
            current = following

    def _check_authentic(self, event: dict) -> None:
        matches = event_hash(event["prev_hash"], hashed_fields(event)) == event["hash"]
        if not event["key_id"]:
            if self.keyed_seen:
                self._problem("forged", event, "no key id after keyed events (the database refuses those)")
            elif not matches:
                self._problem("edited", event, "its fields no longer match its hash (legacy, unkeyed event)")
            else:
                self.legacy += 1
            return
        self.keyed_seen = True
        keyed = self.macs.get(event["key_id"])
        if keyed is None:
            self._problem("forged", event, f"key id {event['key_id']!r} is not in FLOWS_AUDIT_KEYS")
            return
        mac = keyed.copy()
        mac.update(event["hash"].encode())
        if not hmac.compare_digest(mac.hexdigest(), event["mac"]):
            self._problem("forged", event, "its mac does not verify: not written with the audit key")
        elif not matches:
            self._problem("edited", event, "its fields no longer match its hash")

    def check_head(self, head: tuple[int, str] | None) -> None:
        """The head row names the last event: a head further on means events are gone from the end."""
        if head is None:
            return
        last_seq = self.last[0] if self.last else 0
        if head[0] > last_seq:
            self._problem("deleted", None, f"the chain head names seq {head[0]}, its last event is seq {last_seq}")
        elif head[0] < last_seq:
            self._problem("inserted", None, f"events after the chain head (seq {head[0]}) up to seq {last_seq}")
        elif self.last and head[1] != self.last[1]:
            self._problem("broken link", None, f"the chain head's hash is not its last event's (seq {head[0]})")

    def check_checkpoints(self, checkpoints: list[SignedCheckpoint], hashes: dict[int, tuple[int, str]]) -> None:
        """Each signed checkpoint within the walk names an event that still has that hash, and none lies beyond."""
        last_seq = self.last[0] if self.last else 0
        for checkpoint in checkpoints:
            if checkpoint.seq > last_seq:
                detail = f"a checkpoint signed {checkpoint.signed_at} recorded seq {checkpoint.seq}, past its end"
                self._problem("truncated", None, detail)
            elif checkpoint.seq in hashes and hashes[checkpoint.seq][1] != checkpoint.hash:
                detail = f"its hash differs from the one a checkpoint signed {checkpoint.signed_at}"
                self.emit(Problem("rewritten", self.chain, hashes[checkpoint.seq][0], checkpoint.seq, detail))


def read_checkpoints(lines: Iterable[str], *, emit: Callable[[Problem], None]) -> dict[tuple, list[SignedCheckpoint]]:
    """The newest checkpoint per chain in a JSON Lines stream, each signature checked; a bad line or signature is a
    problem."""
    public = keys.public_keys()
    found: dict[tuple, list[SignedCheckpoint]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            checkpoint = SignedCheckpoint(
                data["client_id"], data["chain"], int(data["seq"]), data["hash"], data["signed_at"], data["key_id"],
                data["signature"],
            )  # fmt: skip
        except (ValueError, KeyError, TypeError):
            emit(Problem("checkpoint", "-", None, None, f"line {number} is not a checkpoint"))
            continue
        key = public.get(checkpoint.key_id)
        if key is None:
            detail = (
                f"line {number}: signed with key {checkpoint.key_id!r}, not a trusted one (FLOWS_AUDIT_PUBLIC_KEYS)"
            )
            emit(Problem("checkpoint", checkpoint.chain, None, checkpoint.seq, detail))
            continue
        if not keys.signature_valid(key, checkpoint.signature, checkpoint.message()):
            emit(
                Problem(
                    "checkpoint", checkpoint.chain, None, checkpoint.seq, f"line {number}: signature does not verify"
                )
            )
            continue
        # The newest checkpoint of a chain is enough: its hash pins every event before it, so a
        # stream of a year's checkpoints costs one entry per chain.
        chain = (checkpoint.client_id, checkpoint.chain)
        if chain not in found or found[chain][0].seq < checkpoint.seq:
            found[chain] = [checkpoint]
    return found


def latest_verified_checkpoints(client_id=None) -> dict[tuple, tuple[int, str]]:
    """Per chain, (seq, hash) of the newest checkpoint in the table whose signature verifies: where --resume starts."""
    public = keys.public_keys()
    rows = Checkpoint.objects.order_by("client_id", "chain", "-seq")
    if client_id is not None:
        rows = rows.filter(client_id=client_id)
    latest: dict[tuple, tuple[int, str]] = {}
    for row in rows.iterator(chunk_size=CHUNK_SIZE):
        chain = (str(row.client_id) if row.client_id else None, row.chain)
        if chain in latest:
            continue
        signed_at = row.signed_at.isoformat()
        message = checkpoint_message(chain[0], row.chain, row.seq, row.hash, signed_at=signed_at, key_id=row.key_id)
        key = public.get(row.key_id)
        if key is not None and keys.signature_valid(key, row.signature, message):
            latest[chain] = (row.seq, row.hash)
    return latest


def driver_rows(events) -> Iterator[tuple]:
    """The queryset's EVENT_FIELDS as the driver returns them, in chunks from a server-side cursor (unless
    DISABLE_SERVER_SIDE_CURSORS): no per-row converters, which cost more than the hashing. The one conversion
    that matters is left to the caller: `changes` arrives as the JSON text Django's connection loads jsonb as."""
    # The client id as text from the database: hashing needs its text, and str(UUID) per row costs more.
    columns = [Cast("client_id", output_field=TextField()) if name == "client_id" else name for name in EVENT_FIELDS]
    query = events.values_list(*columns)
    connection = connections[query.db]
    chunked = connection.features.can_use_chunked_reads and not connection.settings_dict.get(
        "DISABLE_SERVER_SIDE_CURSORS"
    )
    compiler = query.query.get_compiler(using=query.db)
    chunks = compiler.execute_sql(MULTI, chunked_fetch=chunked, chunk_size=CHUNK_SIZE)
    for chunk in chunks or ():
        yield from chunk


def event_dicts(events) -> Iterator[dict]:
    """The queryset's events as the dicts the walker takes, `changes` parsed (see driver_rows)."""
    loads = json.loads
    for values in driver_rows(events):
        event = dict(zip(EVENT_FIELDS, values, strict=True))
        event["changes"] = loads(event["changes"])
        yield event


def _chain_order(chain: tuple) -> tuple:
    return chain[0] is None, chain[0] or "", chain[1]


def _event_chain(event: dict) -> tuple[str | None, str]:
    return (None if event["client_id"] is None else str(event["client_id"])), event["chain"]


def verify_database(
    *,
    client_id=None,
    since: datetime | None = None,
    checkpoints: dict[tuple, list[SignedCheckpoint]] | None = None,
    resume: bool = False,
    emit: Callable[[Problem], None],
    progress: Callable[[int], None] = lambda done: None,
    exact: bool = False,
    workers: int | None = None,
) -> Summary:
    """Walk every chain in the database (or one client's), reporting problems through `emit`.

    By default the two-half walk of the module's docstring (`fast_walk`); `exact` (and `resume`,
    which starts each chain somewhere else) walk each chain in seq order instead: the whole trail
    through one server-side cursor in the unique index's order (client, chain, seq), or with
    `resume` one query per chain. All in one repeatable-read snapshot when the caller has no
    transaction open (the heads, the events and the checkpoints then agree however busy the trail).
    `workers`: processes checking the COPY stream's events (None: one per CPU, none for a small
    trail; 0: in this process).
    """
    using = AuditEvent.objects.all().db
    outer = connections[using].in_atomic_block
    with transaction.atomic(using=using):
        if not outer:
            with connections[using].cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _verify_database(
            client_id=client_id, since=since, checkpoints=checkpoints, resume=resume, emit=emit, progress=progress,
            exact=exact, workers=workers,
        )  # fmt: skip


def _verify_database(*, client_id, since, checkpoints, resume, emit, progress, exact, workers) -> Summary:
    summary = Summary()
    ring = keys.chain_keys()
    heads_query = ChainHead.objects.all()
    events = AuditEvent.objects.all()
    if client_id is not None:
        heads_query = heads_query.filter(client_id=client_id)
        events = events.filter(client_id=client_id)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    heads = {(str(h.client_id) if h.client_id else None, h.chain): (h.seq, h.hash) for h in heads_query}
    checkpoints = {
        chain: signed
        for chain, signed in (checkpoints or {}).items()
        if client_id is None or chain[0] == str(client_id)
    }

    def counted(rows) -> Iterator[dict]:
        return _counted(rows, summary, progress)

    def walk_chain(chain: tuple, chain_events: Iterator[dict], start: tuple[int, str] | None) -> None:
        signed = checkpoints.get(chain, [])
        wanted = {checkpoint.seq for checkpoint in signed}
        hashes: dict[int, tuple[int, str]] = {}

        def noted() -> Iterator[dict]:
            for event in chain_events:
                if event["seq"] in wanted:
                    hashes[event["seq"]] = (event["id"], event["hash"])
                yield event

        walker = ChainWalker(chain[1], emit=emit, ring=ring, anchor=None if since else start or (0, GENESIS_HASH))
        walker.walk(noted())
        if since is None:
            walker.check_head(heads.get(chain))
        if since is None or walker.first_seq is not None:
            # A walk from --since or --resume can only judge checkpoints from where it started.
            first = walker.first_seq if since is not None else (start or (0, ""))[0]
            walker.check_checkpoints([c for c in signed if c.seq >= first], hashes)
        summary.chains += 1
        summary.legacy_unkeyed += walker.legacy
        summary.checkpoints += len(signed)

    if not resume and not exact:
        fast_walk(
            events, summary=summary, ring=ring, heads=heads, checkpoints=checkpoints, since=since, emit=emit,
            progress=progress, walk_chain=walk_chain, workers=workers,
        )  # fmt: skip
    elif resume:
        starts = latest_verified_checkpoints(client_id)
        # order_by(): the model's default ordering would put its columns into the DISTINCT (one row per event).
        found = {
            (str(c) if c else None, name) for c, name in events.order_by().values_list("client_id", "chain").distinct()
        }
        for chain in sorted(set(heads) | set(checkpoints) | found, key=_chain_order):
            rows = (
                events.filter(client_id=chain[0], chain=chain[1])
                if chain[0]
                else events.filter(client_id__isnull=True, chain=chain[1])
            )
            start = starts.get(chain)
            if start is not None:
                rows = rows.filter(seq__gt=start[0])
            walk_chain(chain, counted(rows.order_by("seq")), start)
    else:
        walked = set()
        ordered = counted(events.order_by("client_id", "chain", "seq"))
        for chain, chain_events in itertools.groupby(ordered, key=_event_chain):
            walked.add(chain)
            walk_chain(chain, chain_events, None)
        # Chains whose head or checkpoints name events none of which is left.
        for chain in sorted((set(heads) | set(checkpoints)) - walked, key=_chain_order):
            walk_chain(chain, iter(()), None)
    progress(summary.events)
    return summary


GENESIS_SQL = f"'{GENESIS_HASH}'"
# Bytes of COPY output handed to a checker at a time, and how many may wait for one (bounded memory).
COPY_BLOCK = 1 << 20
PENDING_BLOCKS = 4
# Below this many events the COPY stream is checked in this process (starting workers costs more).
WORKERS_FROM = 200_000
# Ids per query when re-checking events through the original path.
RECHECK_BATCH = 500


def _filters(events) -> tuple[str, list]:
    """The WHERE clause (and its parameters) of the walk's queryset, as Django compiles it."""
    query = events.order_by().values_list("id")
    sql, params = query.query.get_compiler(using=events.db).as_sql()
    where = sql.partition(" WHERE ")[2]
    return (f" WHERE {where}" if where else ""), list(params)


def chain_structure(events, *, since: bool) -> Iterator[tuple[tuple, int, str, bool, bool, bool]]:
    """(chain, seq, hash, bad, first, last) for the rows that do not follow their predecessor in the chain (`bad`:
    a gap, an order or a link the walk would question, or a legacy unkeyed event), and each chain's first and last
    row. One pass: a sort of the (filtered) trail by chain and seq, in the database."""
    table = AuditEvent._meta.db_table
    where, params = _filters(events)
    # From --since on, a chain's first event is taken as given, as ChainWalker does with no anchor.
    first_bad = "false" if since else f"seq <> 1 OR prev_hash <> {GENESIS_SQL}"
    sql = (
        "SELECT client_id::text, chain, seq, hash, bad, first_row, last_row FROM ("  # noqa: S608 - the model's table
        " SELECT client_id, chain, seq, hash,"
        f"  (CASE WHEN lag(seq) OVER w IS NULL THEN {first_bad}"
        "   ELSE prev_hash <> lag(hash) OVER w OR seq <> lag(seq) OVER w + 1 END) OR key_id = '' AS bad,"
        "  lag(seq) OVER w IS NULL AS first_row, lead(seq) OVER w IS NULL AS last_row"
        f" FROM {table}{where} WINDOW w AS (PARTITION BY client_id, chain ORDER BY seq)"
        ") AS links WHERE bad OR first_row OR last_row"
    )
    with connections[events.db].cursor() as cursor:
        # The sort holds the hashes of the whole trail: in memory rather than in temporary files where it fits.
        cursor.execute("SET LOCAL work_mem = '128MB'")
        # A cursor is planned for its first rows by default: here that is the unique index's order, read all
        # over the heap (the slow walk this replaces). All the rows are wanted: a sort of one sequential scan.
        cursor.execute("SET LOCAL cursor_tuple_fraction = 1.0")
    with connections[events.db].chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(CHUNK_SIZE):
            for client, chain, seq, hash_, bad, first, last in rows:
                yield (client, chain), seq, hash_, bad, first, last


def _hashes_at(events, wanted: list[tuple[tuple, int]]) -> dict[tuple, str]:
    """{(chain, seq): hash} of the events at these positions (one query for client chains, one per platform one)."""
    found: dict[tuple, str] = {}
    table = AuditEvent._meta.db_table
    client_chains = [(chain, seq) for chain, seq in wanted if chain[0] is not None]
    with connections[events.db].cursor() as cursor:
        for start in range(0, len(client_chains), CHUNK_SIZE):
            batch = client_chains[start : start + CHUNK_SIZE]
            cursor.execute(
                f"SELECT e.client_id::text, e.chain, e.seq, e.hash FROM {table} e"  # noqa: S608 - the model's table
                " JOIN unnest(%s::uuid[], %s::text[], %s::bigint[]) AS w(client_id, chain, seq)"
                " ON e.client_id = w.client_id AND e.chain = w.chain AND e.seq = w.seq",
                [[c[0] for c, _ in batch], [c[1] for c, _ in batch], [seq for _, seq in batch]],
            )
            found.update({((client, chain), seq): hash_ for client, chain, seq, hash_ in cursor.fetchall()})
        for chain, seq in wanted:
            if chain[0] is None:
                cursor.execute(
                    f"SELECT hash FROM {table} WHERE client_id IS NULL AND chain = %s AND seq = %s",  # noqa: S608
                    [chain[1], seq],
                )
                row = cursor.fetchone()
                if row:
                    found[(chain, seq)] = row[0]
    return found


def _copy_blocks(events) -> Iterator[bytes]:
    """The events' COPY text (fastcheck.COPY_COLUMNS, NULL as ''), in physical order, in blocks of whole lines."""
    table = AuditEvent._meta.db_table
    where, params = _filters(events)
    columns = ", ".join(fastcheck.COPY_COLUMNS)
    with connections[events.db].cursor() as cursor:
        # The text fastcheck parses: timestamps in UTC, ISO style.
        cursor.execute("SET LOCAL TimeZone = 'UTC'")
        cursor.execute("SET LOCAL DateStyle = 'ISO'")
        statement = f"COPY (SELECT {columns} FROM {table}{where}) TO STDOUT (NULL '')"  # noqa: S608 - model's names
        with cursor.cursor.copy(statement, params or None) as copy:
            yield from copy_blocks(copy, COPY_BLOCK)


def _checked_blocks(blocks: Iterator[bytes], keyring: dict, skipped: frozenset, workers: int) -> Iterator[tuple]:
    """fastcheck.check_lines over each block, in worker processes when asked (at most PENDING_BLOCKS waiting)."""
    if not workers:
        for block in blocks:
            yield fastcheck.check_lines(block, keyring, skipped)
        return
    # spawn, not fork: the workers import no Django and share no connection.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        waiting: deque = deque()
        for block in blocks:
            waiting.append(pool.apply_async(fastcheck.check_lines, (block, keyring, skipped)))
            if len(waiting) >= workers * PENDING_BLOCKS:
                yield waiting.popleft().get()
        while waiting:
            yield waiting.popleft().get()


def _flag_chains(events, *, heads, checkpoints, since) -> tuple[set[tuple], dict[tuple, tuple[int, str]]]:
    """The chains the ordered walk must name problems in (structure, head, checkpoints), and each chain's last
    (seq, hash)."""
    flagged: set[tuple] = set()
    last: dict[tuple, tuple[int, str]] = {}
    first: dict[tuple, int] = {}
    for chain, seq, hash_, bad, is_first, is_last in chain_structure(events, since=since is not None):
        if bad:
            flagged.add(chain)
        if is_first:
            first[chain] = seq
        if is_last:
            last[chain] = (seq, hash_)
    # What ChainWalker.check_head and check_checkpoints would find: where they would, that chain is walked.
    wanted = []
    for chain, (seq, hash_) in last.items():
        head = heads.get(chain)
        if since is None and head is not None and head != (seq, hash_):
            flagged.add(chain)
        for checkpoint in checkpoints.get(chain, []):
            if checkpoint.seq < (first[chain] if since is not None else 0):
                continue
            if checkpoint.seq > seq or (checkpoint.seq == seq and checkpoint.hash != hash_):
                flagged.add(chain)
            elif checkpoint.seq < seq:
                wanted.append((chain, checkpoint))
    found = _hashes_at(events, [(chain, checkpoint.seq) for chain, checkpoint in wanted])
    flagged.update(chain for chain, checkpoint in wanted if found.get((chain, checkpoint.seq)) != checkpoint.hash)

    return flagged, last


def fast_walk(events, *, summary, ring, heads, checkpoints, since, emit, progress, walk_chain, workers) -> None:
    """The whole (filtered) trail in two halves: the chains' structure in SQL, each event's mac and hash off a COPY
    stream. The chains where the structure query finds something are then walked in seq order by `walk_chain`
    (which names each problem and checks their events itself); every other event is checked on its own."""
    flagged, last = _flag_chains(events, heads=heads, checkpoints=checkpoints, since=since)
    # Every other chain's events, each on its own.
    keyring = {key.id.encode(): key.key for key in ring.keys}
    skipped = frozenset(((client or "").encode(), name.encode()) for client, name in flagged)
    if workers is None:
        estimate = sum(seq for seq, _ in last.values())
        workers = (os.cpu_count() or 1) if estimate >= WORKERS_FROM else 0
    recheck: list[int] = []
    for checked, problems, to_recheck in _checked_blocks(_copy_blocks(events), keyring, skipped, workers):
        before = summary.events
        summary.events += checked
        if summary.events // CHUNK_SIZE != before // CHUNK_SIZE:
            progress(summary.events)
        for kind, chain, event_id, seq, detail in problems:
            emit(Problem(kind, chain.decode(errors="replace"), int(event_id), int(seq), detail))
        recheck.extend(to_recheck)
        if len(recheck) >= RECHECK_BATCH:
            _recheck(events, recheck, emit)
            recheck = []
    _recheck(events, recheck, emit)
    unflagged = set(last) - flagged
    summary.chains += len(unflagged)
    summary.checkpoints += sum(len(checkpoints.get(chain, [])) for chain in unflagged)

    # The flagged chains in seq order, then the chains whose head or checkpoints name events none of which is left.
    for chain in sorted(flagged, key=_chain_order):
        rows = (
            events.filter(client_id=chain[0], chain=chain[1])
            if chain[0]
            else events.filter(client_id__isnull=True, chain=chain[1])
        )
        walk_chain(chain, _counted(rows.order_by("seq"), summary, progress), None)
    for chain in sorted((set(heads) | set(checkpoints)) - set(last), key=_chain_order):
        walk_chain(chain, iter(()), None)


def _counted(rows, summary: Summary, progress) -> Iterator[dict]:
    for event in event_dicts(rows):
        summary.events += 1
        if summary.events % CHUNK_SIZE == 0:
            progress(summary.events)
        yield event


def _recheck(events, ids: list[int], emit: Callable[[Problem], None]) -> None:
    """Events whose mac verifies but whose hash fastcheck's encoding did not reproduce: hashed again as record()
    hashed them; an edit only if that does not match either."""
    if not ids:
        return
    for event in event_dicts(events.filter(id__in=ids).order_by("id")):
        if event_hash(event["prev_hash"], hashed_fields(event)) != event["hash"]:
            emit(Problem("edited", event["chain"], event["id"], event["seq"], "its fields no longer match its hash"))


def verify_export(lines: Iterable[str], *, emit: Callable[[Problem], None]) -> Summary:
    """Walk the chains of an exported JSON Lines file (export_audit --format jsonl), offline.

    An export may be filtered (--since): each chain is checked from its first exported event on.
    """
    summary = Summary()
    ring = keys.chain_keys()

    def events() -> Iterator[dict]:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                event["occurred_at"] = datetime.fromisoformat(event["occurred_at"])
                missing = set(EVENT_FIELDS) - event.keys()
            except (ValueError, KeyError, TypeError, AttributeError):
                missing = {"?"}
            if missing:
                emit(Problem("unreadable", "-", None, None, f"line {number} is not an exported event"))
                continue
            summary.events += 1
            yield event

    # The export is ordered by chain, then seq: one chain at a time, streamed.
    for _, chain_events in itertools.groupby(events(), key=lambda event: (event["client_id"], event["chain"])):
        first = next(chain_events)
        walker = ChainWalker(first["chain"], emit=emit, ring=ring, anchor=None)
        walker.walk(itertools.chain([first], chain_events))  # noqa: B031 - consumed once, before groupby moves on
        summary.chains += 1
        summary.legacy_unkeyed += walker.legacy
    return summary
