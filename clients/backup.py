"""Per-client backup and restore: one client's rows in every tenant table, in one checksummed file.

The file (docs/operations.md#per-client-backup) is JSON Lines: a header (format, version, the
installation's migrations, the key ids its restore needs, each table's columns), one line per row
(`{"t": <table>, "r": {column: value}}`), and a trailer with the row counts and the SHA-256 of
every byte before it. Values stay as stored: data keys wrapped by a master key, secrets encrypted
under a data key, audit events with their chain fields. Writing a backup needs no master key.

Restoring runs as the owner in one transaction: the rows, the audit chain inserted verbatim and
walked with the audit key ring before anything commits, and a `client.restored` event. Killed
half-way, it leaves nothing.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, models, transaction
from django.utils import timezone
from psycopg import sql

from audit import keys as audit_keys
from audit.services import GENESIS_HASH, record
from audit.verification import ChainWalker
from clients.models import Client
from config.errors import InvalidInput, Refused, excerpt
from vault import keyring
from vault.errors import VaultError
from vault.keys import ClientKeys, data_key_context, unwrap, wrap

FORMAT = "flows-client-backup"
VERSION = 1
# Every tenant table whose rows a client backup carries, in restore order: a row's references
# (its client, its application) come before it, a chain's head before its events.
BACKED_UP: tuple[str, ...] = (
    "clients.Client",
    "clients.Application",
    "clients.ApiKey",
    "vault.DataKey",
    "vault.Secret",
    "vault.SecretAccess",
    "invitations.Invitation",
    "api.Usage",
    "audit.ChainHead",
    "audit.AuditEvent",
    "audit.Checkpoint",
)
# Tenant tables deliberately left out, with the reason. tests/clients/test_backup.py fails when a
# tenant model is in neither: a new table cannot be forgotten.
NOT_BACKED_UP: dict[str, str] = {
    "staff.ClientUserGrant": "grants name staff users of this installation by id: restored elsewhere they would "
    "give access to whoever holds that id there; grant access again with grant_client_access",
    "staff.ClientGroupGrant": "grants name staff groups of this installation by id (as above)",
    # Derived: the invitations' trigger writes both as the restored invitations are inserted.
    "reports.InvitationDaily": "the dashboard's summary, derived from the invitations: restoring them rebuilds it "
    "(the history of invitations purged before the backup was taken is not carried)",
    "reports.ClientSeats": "the dashboard's summary of seats, derived from the invitations: restoring them rebuilds it",
}
# Rows per round trip of the server-side cursor (reads) and per INSERT batch (restore).
CHUNK = 2000
# The longest line a backup may hold: a line is read whole, so a longer one is refused, never read into memory.
# The largest rows (an audit event with its changes, an encrypted secret) are far below it.
MAX_LINE_BYTES = 16 * 1024 * 1024
AUDIT_RESTORE_SETTING = "flows.audit_restore"  # audit/migrations/0006: the owner's verbatim inserts keep their time


def backed_up_models() -> list[type[models.Model]]:
    return [apps.get_model(label) for label in BACKED_UP]


def _client_column(model) -> str:
    return model.tenant_key


def _columns(model) -> list[models.Field]:
    return list(model._meta.concrete_fields)


def _encode(field_: models.Field, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(field_, models.BinaryField):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _decode(field_: models.Field, value: Any) -> Any:
    if value is None or isinstance(field_, models.JSONField):
        return value
    return field_.to_python(value)


def _line(document: dict) -> bytes:
    # ASCII only, keys sorted: the same row always has the same bytes.
    return (json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n").encode()


def _migration_heads(using: str) -> dict[str, str]:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT app, max(name) FROM django_migrations GROUP BY app ORDER BY app")
        return dict(cursor.fetchall())


def _ordering(model) -> list[str]:
    if model._meta.label == "audit.AuditEvent":
        return ["chain", "seq"]
    if model._meta.label == "audit.ChainHead":
        return ["chain"]
    return [model._meta.pk.attname]


# --- Backup --------------------------------------------------------------------------------------


@dataclass
class BackupSummary:
    client: str
    erased: bool
    counts: dict[str, int]
    sha256: str
    bytes: int


def write_backup(*, actor, client: Client, out: IO[bytes], finish: Callable[[], None] = lambda: None) -> BackupSummary:
    """Stream `client`'s rows in every backed-up table to `out`, as the console role.

    The backup is recorded first in its own committed transaction (like an audit export: an
    interrupted backup is still on record, and the file carries its own event). The rows are read
    in one REPEATABLE READ, READ ONLY transaction: one consistent snapshot, through server-side
    cursors in chunks, so memory stays constant whatever the client's size.

    The backup is complete once the trailer is written, `out` flushed and `finish` (the file's fsync) has
    returned. When anything before that fails — a closed pipe, a full disk — `client.backup_failed` is
    recorded with the reason, so the trail never shows a backup that was not written without saying so,
    and a write error is refused with a clear message (nothing of the file can be trusted).
    """
    using = settings.CONSOLE_DB_ALIAS
    with transaction.atomic(using=using, durable=True):
        record(actor=actor, action="client.backed_up", client=client, target=client, changes={"format": VERSION})
    try:
        summary = _write_rows(client, out, using)
        finish()
    except Exception as error:
        raise _backup_failed(actor, client, error) from None
    return summary


def _backup_failed(actor, client: Client, error: Exception) -> Exception:
    """Record `client.backup_failed` for a backup that was recorded but not written completely; the error to raise:
    a clear refusal for a write error (OSError), the original error otherwise."""
    reason = (error.strerror or error.__class__.__name__) if isinstance(error, OSError) else error.__class__.__name__
    try:
        with transaction.atomic(using=settings.CONSOLE_DB_ALIAS, durable=True):
            record(
                actor=actor,
                action="client.backup_failed",
                client=client,
                target=client,
                changes={"format": VERSION, "reason": reason},
            )
    except Exception:  # the database itself failed: the original error says more
        return error
    if not isinstance(error, OSError):
        return error
    return Refused(
        f"The backup of {client.code} was not written completely: {reason}. Recorded as client.backup_failed; "
        "discard whatever was written and run the backup again.",
        code="backup_write_failed",
    )


def _write_rows(client: Client, out: IO[bytes], using: str) -> BackupSummary:
    digest = hashlib.sha256()
    written = 0

    def emit(document: dict) -> None:
        nonlocal written
        data = _line(document)
        digest.update(data)
        out.write(data)
        written += len(data)

    counts: dict[str, int] = {}
    with transaction.atomic(using=using, durable=True):
        with connections[using].cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        data_keys = list(
            apps.get_model("vault.DataKey")
            .objects.using(using)
            .filter(client_id=client.pk)
            .values_list("version", "status", "master_key_id")
        )
        audit_key_ids = sorted(
            apps.get_model("audit.AuditEvent")
            .objects.using(using)
            .filter(client_id=client.pk)
            .exclude(key_id="")
            .order_by()
            .values_list("key_id", flat=True)
            .distinct()
        )
        erased = bool(data_keys) and all(status == "destroyed" for _, status, _ in data_keys)
        emit(
            {
                "format": FORMAT,
                "version": VERSION,
                "created_at": timezone.now().isoformat(),
                "client": {"id": str(client.pk), "code": client.code},
                "erased": erased,
                "installation": {"migrations": _migration_heads(using), "postgresql": connections[using].pg_version},
                "keys": {
                    "master": sorted({key for _, status, key in data_keys if status != "destroyed"}),
                    "audit": audit_key_ids,
                },
                "tables": {
                    model._meta.label: [column.attname for column in _columns(model)] for model in backed_up_models()
                },
            }
        )
        for model in backed_up_models():
            label = model._meta.label
            fields = _columns(model)
            names = [column.attname for column in fields]
            rows = (
                model.objects.using(using)
                .filter(**{_client_column(model): client.pk})
                .order_by(*_ordering(model))
                .values_list(*names)
            )
            counts[label] = 0
            for values in rows.iterator(chunk_size=CHUNK):
                emit({"t": label, "r": {f.attname: _encode(f, v) for f, v in zip(fields, values, strict=True)}})
                counts[label] += 1
    sha = digest.hexdigest()
    trailer = _line({"trailer": {"counts": counts, "rows": sum(counts.values()), "sha256": sha}})
    out.write(trailer)
    out.flush()
    return BackupSummary(client.code, erased, counts, sha, written + len(trailer))


def backup_to_file(*, actor, client: Client, path: Path) -> BackupSummary:
    """Write the backup next to `path` under a temporary name, fsync it, then rename: never a partial file.

    The temporary file is created before the backup is recorded: a path that cannot be written is
    refused with nothing on record.
    """
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        if path.exists():
            raise Refused(
                f"{excerpt(path, limit=300)} exists: choose a new name (a backup never overwrites a file).",
                code="file_exists",
            )
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise InvalidInput(f"Cannot create {excerpt(path, limit=300)}: {error.strerror}.", code="unwritable") from None
    try:
        with os.fdopen(descriptor, "wb") as out:

            def finish() -> None:  # on disk and under its name, or the backup is recorded as failed
                os.fsync(out.fileno())
                os.replace(temporary, path)

            summary = write_backup(actor=actor, client=client, out=out, finish=finish)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return summary


# --- Reading a backup ------------------------------------------------------------------------------


@dataclass
class Backup:
    """A verified backup file: its header and trailer. Rows are read again, streamed, by `rows()`."""

    path: Path
    header: dict
    trailer: dict
    data_keys: list[dict] = field(default_factory=list)
    chain_heads: list[dict] = field(default_factory=list)

    @property
    def client_id(self) -> str:
        return self.header["client"]["id"]

    @property
    def client_code(self) -> str:
        return self.header["client"]["code"]

    def rows(self, label: str | None = None) -> Iterator[tuple[str, dict]]:
        """The rows again (checked by `read_backup`, each line at most MAX_LINE_BYTES long)."""
        with self.path.open("rb") as handle:
            for number, raw in _lines(handle):
                if number == 1:
                    continue
                document = json.loads(raw)
                if "trailer" in document:
                    return
                if label is None or document["t"] == label:
                    yield document["t"], document["r"]


def _damaged(detail: str) -> Refused:
    message = f"The backup file is damaged or not a client backup: {detail}. Nothing was restored."
    return Refused(message, code="bad_backup")


def _check_header(document: dict) -> dict:
    if document.get("format") != FORMAT:
        raise _damaged("the first line does not name the format " + FORMAT)
    if document.get("version") != VERSION:
        raise Refused(
            f"The backup is format version {document.get('version')!r}; this installation reads version "
            f"{VERSION}. Restore it with the release that wrote it.",
            code="bad_backup_version",
        )
    client, tables = document.get("client"), document.get("tables")
    if not (isinstance(client, dict) and isinstance(client.get("id"), str) and isinstance(client.get("code"), str)):
        raise _damaged("the header does not name its client (id and code)")
    try:
        uuid.UUID(client["id"])
    except ValueError:
        raise _damaged("the header's client id is not a UUID") from None
    if not isinstance(tables, dict) or not all(
        label in BACKED_UP and isinstance(names, list) and all(isinstance(name, str) for name in names)
        for label, names in tables.items()
    ):
        raise _damaged("the header lists a table this release does not back up, or its columns are not names")
    for label in BACKED_UP:
        if label not in tables:
            raise _damaged(f"the header does not list the table {label}")
        if len(set(tables[label])) != len(tables[label]):
            raise _damaged(f"the header lists a column of {label} twice")
        if missing := sorted(set(_required_columns(apps.get_model(label))) - set(tables[label])):
            raise _damaged(f"the header's table {label} lacks the column(s) {', '.join(missing)}")
    installation = document.get("installation")
    migrations = installation.get("migrations") if isinstance(installation, dict) else None
    if not isinstance(migrations, dict) or not all(isinstance(name, str) for name in migrations.values()):
        raise _damaged("the header's migrations are not app → migration names")
    keys = document.get("keys")
    if not isinstance(keys, dict) or not all(
        isinstance(keys.get(kind), list) and all(isinstance(key, str) for key in keys[kind])
        for kind in ("master", "audit")
    ):
        raise _damaged("the header's key ids (master and audit) are not lists of names")
    if not isinstance(document.get("created_at"), str) or not isinstance(document.get("erased", False), bool):
        raise _damaged("the header's created_at is not a time or its erased flag not true or false")
    return document


def _required_columns(model) -> list[str]:
    """Columns a row cannot be inserted without: NOT NULL, no database default, not assigned by the database."""
    return [
        column.attname
        for column in _columns(model)
        if not column.null
        and column.db_default is models.NOT_PROVIDED
        and not isinstance(column, models.AutoField | models.BigAutoField)
    ]


def _json_kind(target: models.Field) -> tuple[type | tuple[type, ...], str]:
    """The JSON type(s) a column's value has in a backup, and its name for a message."""
    if isinstance(target, models.JSONField):
        return object, "JSON value"
    if isinstance(target, ArrayField):
        return list, "list"
    if isinstance(target, models.BooleanField):
        return bool, "true or false"
    if isinstance(target, models.IntegerField):  # the auto fields too
        return int, "whole number"
    if isinstance(target, models.FloatField | models.DecimalField):
        return (int, float, str), "number"
    return str, "string"


def _size_problem(target: models.Field, value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = connections[DEFAULT_DB_ALIAS].ops.integer_field_range(target.get_internal_type())
        if (low is not None and value < low) or (high is not None and value > high):
            return f"is out of the column's range ({low} to {high})"
    if isinstance(target, models.CharField) and target.max_length and len(value) > target.max_length:
        return f"is longer than the column's {target.max_length} characters"
    return None


def _value_problem(column: models.Field, value: Any) -> str | None:
    """What is wrong with `value` (as the file holds it) for `column`, or None: its JSON type, its size, and
    whether it reads back as the column's type. A restore then never meets a value its INSERT would trip on
    with an error less clear than this one."""
    if value is None:
        return None if column.null else "is null, which the column does not allow"
    target = column.target_field if column.is_relation else column
    expected, kind = _json_kind(target)
    if not isinstance(value, expected) or (isinstance(value, bool) and not isinstance(target, models.BooleanField)):
        return f"is not a {kind} (found {type(value).__name__})"
    if isinstance(target, ArrayField):
        return next(filter(None, (_value_problem(target.base_field, item) for item in value)), None)
    return _content_problem(column, target, value)


def _content_problem(column: models.Field, target: models.Field, value: Any) -> str | None:
    """What is wrong with a value of the right JSON type: its text, its size, its form (a time, a UUID, base64)."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except (UnicodeEncodeError, RecursionError, ValueError):
        return "is not valid text (an unpaired surrogate, or nested too deep)"
    if _holds_nul(value):
        return "holds a NUL character, which the database refuses"
    if problem := _size_problem(target, value):
        return problem
    try:
        if isinstance(target, models.BinaryField):
            base64.b64decode(value, validate=True)  # to_python alone would skip what is not base64
        _decode(column, value)
    except (ValidationError, ValueError, TypeError, OverflowError):
        return f"is not a valid {target.get_internal_type()} value"
    return None


def _holds_nul(value: Any) -> bool:
    """Whether any string in `value` (keys included) holds a NUL. Iterative: a file's JSON may nest deeper than
    Python's recursion limit allows a recursive walk (json.loads accepts it)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _check_row(number: int, table: str, row: dict, names: list[str]) -> None:
    """A row holds exactly the header's columns for its table, each a value of the column's type."""
    if missing := [name for name in names if name not in row]:
        raise _damaged(f"line {number}: the {table} row lacks the column(s) {', '.join(missing)}")
    if extra := sorted(name for name in row if name not in names):
        shown = ", ".join(excerpt(name, limit=60) for name in extra[:5])
        raise _damaged(f"line {number}: the {table} row has column(s) the header does not list: {shown}")
    columns = {column.attname: column for column in _columns(apps.get_model(table))}
    for name in names:
        if name in columns and (problem := _value_problem(columns[name], row[name])):
            raise _damaged(f"line {number}: the {table} row's {name} {problem}")


def _check_owned(number: int, table: str, row: dict, client: dict) -> None:
    """Every row of a client backup belongs to the header's client: its tenant key (the client row: its id and
    code) and, for audit rows, its chain. The checksum is not a signature, so a crafted file must not plant a
    row — an API key, an audit event — in another client of the installation."""
    model = apps.get_model(table)
    if str(row.get(_client_column(model))) != client["id"]:
        raise _damaged(f"line {number} is a {table} row of another client than the header's")
    if table == "clients.Client" and row.get("code") != client["code"]:
        raise _damaged(f"line {number}: the client row's code is not the header's")
    if "chain" in row and row["chain"] != client["id"]:
        raise _damaged(f"line {number} is a {table} row of another chain than the client's")


def _lines(handle) -> Iterator[tuple[int, bytes]]:
    """(number, bytes) of each line, none read past MAX_LINE_BYTES: a longer line is refused, not held in memory."""
    number = 0
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise _damaged(f"line {number} is longer than {MAX_LINE_BYTES:,} bytes")
        yield number, raw


def _documents(path: Path) -> Iterator[tuple[int, bytes, dict]]:
    with path.open("rb") as handle:
        for number, raw in _lines(handle):
            try:
                document = json.loads(raw)
            except (ValueError, RecursionError):
                raise _damaged(f"line {number} is not JSON (or nested too deep)") from None
            if not isinstance(document, dict):
                raise _damaged(f"line {number} is not a JSON object")
            yield number, raw, document


def _check_document_row(number: int, document: dict, header: dict, counts: dict[str, int]) -> str:
    """A row line: a known table, exactly its columns, each of its type, of the header's client. Its table."""
    table = document.get("t")
    if not isinstance(table, str) or table not in header["tables"]:
        shown = excerpt(table, limit=60) if isinstance(table, str) else type(table).__name__
        raise _damaged(f"line {number} is not a row of a known table (its table: {shown})")
    if set(document) != {"t", "r"} or not isinstance(document["r"], dict):
        raise _damaged(f"line {number} is not a row: a table (t) and its columns (r) only")
    _check_row(number, table, document["r"], header["tables"][table])
    _check_owned(number, table, document["r"], header["client"])
    if table == "clients.Client" and counts.get(table):
        raise _damaged(f"line {number} is a second client row; a client backup holds exactly one")
    return table


def _check_trailer(number: int, trailer: Any) -> dict:
    counts = trailer.get("counts", {}) if isinstance(trailer, dict) else None
    if not (
        isinstance(counts, dict)
        and all(isinstance(count, int) and not isinstance(count, bool) for count in counts.values())
        and isinstance(trailer.get("sha256"), str)
        and isinstance(trailer.get("rows", 0), int)
    ):
        raise _damaged(f"line {number}: the trailer is not row counts and a SHA-256")
    return trailer


def read_backup(path: Path) -> Backup:
    """Check the file before anything else: format and version, checksum, counts. Streams; keeps the small rows
    restore checks up front (data keys, chain heads)."""
    try:
        readable = path.is_file()
    except OSError:
        readable = False
    if not readable:
        raise InvalidInput(f"No backup file {excerpt(path, limit=300)}.", code="no_file")
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    header = trailer = None
    backup = Backup(path, {}, {})
    kept = {"vault.DataKey": backup.data_keys, "audit.ChainHead": backup.chain_heads}
    for number, raw, document in _documents(path):
        if trailer is not None:
            raise _damaged(f"line {number} follows the trailer")
        if header is None:
            header = _check_header(document)
        elif "trailer" in document:
            trailer = _check_trailer(number, document["trailer"])
            continue
        else:
            table = _check_document_row(number, document, header, counts)
            counts[table] = counts.get(table, 0) + 1
            if table in kept:
                kept[table].append(document["r"])
        digest.update(raw)
    if header is None or trailer is None:
        raise _damaged("it is truncated (no trailer)")
    if trailer.get("sha256") != digest.hexdigest():
        raise _damaged("its SHA-256 does not match the trailer's (altered or truncated)")
    expected = {table: count for table, count in (trailer.get("counts") or {}).items() if count}
    if expected != counts or trailer.get("rows", sum(counts.values())) != sum(counts.values()):
        raise _damaged("its row counts do not match the trailer's")
    if not counts.get("clients.Client"):
        raise _damaged("it holds no client row; a client backup holds exactly one")
    backup.header, backup.trailer = header, trailer
    return backup


# --- Restore -------------------------------------------------------------------------------------


@dataclass
class RestoreSummary:
    client: str
    client_id: str
    source: dict
    counts: dict[str, int]
    skipped: dict[str, int]
    dry_run: bool
    sha256: str


class _DryRun(Exception):
    """Rolls the restore's transaction back once everything has been checked."""


def _check_compatible(backup: Backup, using: str) -> None:
    heads = _migration_heads(using)
    newer = [
        f"{app}.{name}"
        for app, name in sorted(backup.header["installation"]["migrations"].items())
        if app in heads and name > heads[app]
    ]
    if newer:
        raise Refused(
            f"The backup was made by a newer release (migrations {', '.join(newer)} are not applied here): "
            "upgrade this installation first.",
            code="backup_too_new",
        )
    for label, columns in backup.header["tables"].items():
        if label not in BACKED_UP:
            raise Refused(f"The backup holds table {label}, which this release does not know.", code="backup_too_new")
        known = {column.attname for column in _columns(apps.get_model(label))}
        if unknown := sorted(set(columns) - known):
            raise Refused(
                f"The backup's table {label} has column(s) {', '.join(unknown)} this release does not know.",
                code="backup_too_new",
            )


def _check_master_keys(backup: Backup) -> None:
    """Every live data key's master key is in the ring, and unwraps it: a precise refusal naming the key id."""
    ring = keyring.load()
    for row in backup.data_keys:
        if row["status"] == "destroyed":
            continue
        what = f"Data key v{row['version']} of {backup.client_code}"
        if not row["wrapped_key"]:
            raise _damaged(f"{what} is {row['status']} but holds no wrapped key")
        if row["master_key_id"] not in ring.ids:
            raise Refused(
                f"{what} is wrapped by master key '{row['master_key_id']}', which is not in this installation's key "
                f"ring (FLOWS_MASTER_KEYS holds: {', '.join(ring.ids)}). Add that key to the ring, then restore.",
                code="master_key_missing",
            )
        try:
            unwrap(base64.b64decode(row["wrapped_key"]), data_key_context(backup.client_id, row["version"]), what=what)
        except VaultError as error:
            raise Refused(f"{error.message} Nothing was restored.", code=error.code) from None


def _audit_events(rows: Iterable[dict]) -> Iterator[dict]:
    for row in rows:
        yield {**row, "occurred_at": datetime.fromisoformat(row["occurred_at"]), "client_id": row["client_id"]}


def _check_audit_chain(backup: Backup, events: Callable[[], Iterable[dict]]) -> int:
    """Walk every chain in `events` with the audit key ring; refuse with the findings when one does not verify."""
    ring = audit_keys.chain_keys()
    if missing := sorted(set(backup.header["keys"]["audit"]) - set(ring.ids)):
        raise Refused(
            f"The client's audit events are keyed with {', '.join(repr(k) for k in missing)}, not in FLOWS_AUDIT_KEYS "
            f"here (it holds: {', '.join(ring.ids)}): the restored chain could not be verified. Add the key(s).",
            code="audit_key_missing",
        )
    heads = {row["chain"]: (row["seq"], row["hash"]) for row in backup.chain_heads}
    problems: list[str] = []
    walked = 0
    for chain, chain_events in itertools.groupby(events(), key=lambda event: event["chain"]):
        walker = ChainWalker(chain, emit=lambda p: problems.append(p.line()), ring=ring, anchor=(0, GENESIS_HASH))
        walker.walk(chain_events)
        walker.check_head(heads.pop(chain, None))
        walked += 1
    for chain, head in heads.items():
        ChainWalker(chain, emit=lambda p: problems.append(p.line()), ring=ring, anchor=None).check_head(head)
    if problems:
        raise Refused(
            f"The client's audit chain does not verify ({len(problems)} finding(s)); nothing was restored: "
            + "; ".join(problems[:5]),
            code="audit_chain_invalid",
            fields={"problems": problems[:100]},
        )
    return walked


class _Rekey:
    """What changes when a client is restored under a new code: see docs/operations.md#restoring-under-a-new-code."""

    def __init__(self, backup: Backup, *, code: str, domain: str | None):
        self.old_id = backup.client_id
        self.new_id = str(uuid.uuid4())
        self.code = code
        self.domain = domain
        self.ids: dict[str, str] = {}
        self.wrapped: dict[int, bytes] = {}
        self.old_keys: dict[int, ClientKeys] = {}
        self.new_keys: dict[int, ClientKeys] = {}
        self.now = timezone.now().isoformat()
        self.skipped: dict[str, int] = {}
        self.source = backup

    def new(self, old: str) -> str:
        return self.ids.setdefault(old, str(uuid.uuid4()))

    def keys(self, version: int, *, old: bool) -> ClientKeys:
        cache = self.old_keys if old else self.new_keys
        if version not in cache:
            wrapped = {
                row["version"]: base64.b64decode(row["wrapped_key"])
                for row in self.source.data_keys
                if row["wrapped_key"]
            }
            cache[version] = ClientKeys(
                client_id=self.old_id if old else self.new_id,
                client_code=self.source.client_code if old else self.code,
                wrapped=wrapped if old else self.wrapped,
                active_version=version,
                erased=False,
            )
        return cache[version]

    def row(self, label: str, row: dict) -> dict | None:
        if label in ("clients.ApiKey", "audit.ChainHead", "audit.AuditEvent", "audit.Checkpoint"):
            self.skipped[label] = self.skipped.get(label, 0) + 1
            return None
        row = dict(row)
        if label == "clients.Client":
            row.update(id=self.new_id, code=self.code, domain=self.domain or row["domain"])
            return row
        row["client_id"] = self.new_id
        if label == "clients.Application":
            row["id"] = self.new(row["id"])
        elif label == "vault.DataKey":
            row["id"] = str(uuid.uuid4())
            if row["wrapped_key"] is not None:
                version = row["version"]
                raw = unwrap(
                    base64.b64decode(row["wrapped_key"]),
                    data_key_context(self.old_id, version),
                    what=f"Data key v{version} of {self.source.client_code}",
                )
                self.wrapped[version], row["master_key_id"] = wrap(raw, data_key_context(self.new_id, version))
                row["wrapped_key"] = base64.b64encode(self.wrapped[version]).decode()
        elif label == "vault.Secret":
            old_id, version = row["id"], row["data_key_version"]
            row["id"] = self.new(old_id)
            value = self.keys(version, old=True).decrypt(
                base64.b64decode(row["ciphertext"]), purpose="secret", record_id=old_id
            )
            ciphertext, _ = self.keys(version, old=False).encrypt(value, purpose="secret", record_id=row["id"])
            row["ciphertext"] = base64.b64encode(ciphertext).decode()
        elif label == "vault.SecretAccess":
            row["secret_id"] = self.ids.get(row["secret_id"], row["secret_id"])
        elif label == "invitations.Invitation":
            row["id"] = self.new(row["id"])
            if row["application_id"] not in self.ids:
                raise _damaged(f"invitation {row['code']} is for an application the backup does not hold")
            row["application_id"] = self.ids[row["application_id"]]
            row["code"] = "INV-" + uuid.uuid4().hex[:6].upper()
            if row["status"] == "pending":
                # Its token names the old client and invitation: it can never be redeemed here.
                row.update(
                    status="revoked",
                    revoked_at=self.now,
                    finished_at=self.now,
                    revoked_by="restore_client",
                    revoke_reason=f"restored from {self.source.client_code} under the new code {self.code}",
                )
        elif label == "api.Usage" and row["application_id"]:
            row["application_id"] = self.ids.get(row["application_id"], row["application_id"])
        return row


def _insert(cursor, connection, model, names: list[str], batch: list[dict]) -> None:
    fields = {column.attname: column for column in _columns(model)}
    # Serial ids are the target's to assign: the source's would collide with other clients' rows there.
    # (An audit event's id is not part of its hash.)
    columns = [name for name in names if not isinstance(fields[name], models.AutoField | models.BigAutoField)]
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(model._meta.db_table),
        sql.SQL(", ").join(sql.Identifier(fields[name].column) for name in columns),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    values = [
        [fields[name].get_db_prep_save(_decode(fields[name], row.get(name)), connection) for name in columns]
        for row in batch
    ]
    cursor.executemany(statement.as_string(cursor.connection), values)


def _insert_table(cursor, connection, model, names: list[str], rows: Iterable[dict]) -> int:
    count = 0
    rows = iter(rows)
    while batch := list(itertools.islice(rows, CHUNK)):
        _insert(cursor, connection, model, names, batch)
        count += len(batch)
    return count


def _refuse_existing(cursor, client_id: str, code: str, domain: str) -> None:
    cursor.execute("SELECT id::text, code, domain FROM clients_client WHERE id = %s OR code = %s OR domain = %s",
                   [client_id, code, domain])  # fmt: skip
    for found_id, found_code, found_domain in cursor.fetchall():
        if found_id == client_id or found_code == code:
            raise Refused(
                f"Client {found_code} ({found_id}) exists in this installation: a restore never overwrites a client. "
                "Restore under a new code with --as-code.",
                code="client_exists",
            )
        raise Refused(
            f"The domain {found_domain} belongs to client {found_code} here: pass --domain with another one.",
            code="domain_taken",
        )
    cursor.execute("SELECT count(*) FROM audit_chainhead WHERE client_id = %s", [client_id])
    if cursor.fetchone()[0]:
        raise Refused(
            f"This installation's audit trail already holds a chain for client id {client_id}: restore under a new "
            "code with --as-code.",
            code="client_exists",
        )


def restore_client(
    *,
    actor,
    path: Path,
    as_code: str | None = None,
    domain: str | None = None,
    dry_run: bool = False,
    progress: Callable[[str, int], None] = lambda table, done: None,
) -> RestoreSummary:
    """Load a client backup into this installation, all or nothing, as the owner.

    Checks first, before any write: the checksum and format version, the release (migrations), the
    master keys of the live data keys (in the ring, and they unwrap), the audit chain (walked with
    FLOWS_AUDIT_KEYS). Then, in one transaction: the tables lose FORCE ROW LEVEL SECURITY for this
    transaction only (the owner's verbatim inserts; the ALTERs roll back with it, and FORCE is set
    again before commit), every row is inserted, the chain is walked again as stored, and
    `client.restored` is recorded in it. `dry_run` does all of it and rolls back.
    """
    using = DEFAULT_DB_ALIAS
    if connections[using].settings_dict.get("USER") in (settings.CONSOLE_ROLE, settings.APP_ROLE):
        raise Refused(
            "restore_client runs as the owner of the tables: set DATABASE_URL to the owner's credentials.",
            code="owner_required",
        )
    backup = read_backup(path)
    _check_compatible(backup, using)
    erased = bool(backup.header.get("erased"))
    rekey = None
    if as_code is not None:
        if erased:
            raise Refused(
                "An erased client's backup can be restored only under its own code: its data keys are destroyed, so "
                "nothing in it can be re-keyed for a new client.",
                code="client_erased",
            )
        rekey = _Rekey(backup, code=as_code, domain=domain)
    if not erased:
        _check_master_keys(backup)
    if rekey is None:
        _check_audit_chain(backup, lambda: _audit_events(row for _, row in backup.rows("audit.AuditEvent")))
    client_id = rekey.new_id if rekey else backup.client_id
    code = rekey.code if rekey else backup.client_code
    counts: dict[str, int] = {}
    try:
        with transaction.atomic(using=using, durable=True), connections[using].cursor() as cursor:
            _load(cursor, backup, rekey, using=using, actor=actor, domain=domain, counts=counts, progress=progress)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    except IntegrityError as error:
        constraint = getattr(getattr(error.__cause__, "diag", None), "constraint_name", None) or "unknown"
        raise Refused(
            f"A row of the backup conflicts with this installation's data (constraint {constraint}); nothing was "
            "restored.",
            code="restore_conflict",
        ) from None
    return RestoreSummary(
        client=code,
        client_id=client_id,
        source={"client": backup.client_code, "client_id": backup.client_id, "created_at": backup.header["created_at"]},
        counts=counts,
        skipped=rekey.skipped if rekey else {},
        dry_run=dry_run,
        sha256=backup.trailer["sha256"],
    )


def _load(cursor, backup: Backup, rekey: _Rekey | None, *, using, actor, domain, counts, progress) -> None:
    """The restore's writes, inside its transaction (see restore_client)."""
    connection = connections[using]
    client_id = rekey.new_id if rekey else backup.client_id
    code = rekey.code if rekey else backup.client_code
    cursor.execute("SET LOCAL lock_timeout = '15s'")
    tables = [model._meta.db_table for model in backed_up_models()]
    for table in tables:
        cursor.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(sql.Identifier(table)))
    client_row = next(row for _, row in backup.rows("clients.Client"))
    _refuse_existing(cursor, client_id, code, domain or client_row["domain"])
    cursor.execute("SELECT set_config(%s, 'on', true)", [AUDIT_RESTORE_SETTING])
    for model in backed_up_models():
        label = model._meta.label
        names = backup.header["tables"][label]
        if rekey is not None:
            rows = (changed for _, row in backup.rows(label) if (changed := rekey.row(label, row)) is not None)
        elif label == "audit.ChainHead":
            # Each chain starts at its genesis; inserting its events moves it (audit/migrations/0004).
            rows = ({**row, "seq": 0, "hash": GENESIS_HASH} for _, row in backup.rows(label))
        else:
            rows = (row for _, row in backup.rows(label))
        counts[label] = _insert_table(cursor, connection, model, names, rows)
        progress(label, counts[label])
    cursor.execute("SELECT set_config(%s, '', true)", [AUDIT_RESTORE_SETTING])
    if rekey is None:
        _check_stored_chain(backup, using)
    client = Client.objects.using(using).get(pk=client_id)
    record(
        actor=actor,
        action="client.restored",
        client=client,
        target=client,
        using=using,
        changes={
            "backup_sha256": backup.trailer["sha256"],
            "source_client": backup.client_code,
            "source_client_id": backup.client_id,
            "source_chain_head": {row["chain"]: row["seq"] for row in backup.chain_heads},
            "rows": sum(counts.values()),
            "not_restored": rekey.skipped if rekey else {},
        },
    )
    # Deferred foreign-key checks run now: an ALTER TABLE waits for no pending trigger event.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for table in tables:
        cursor.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(sql.Identifier(table)))


def _check_stored_chain(backup: Backup, using: str) -> None:
    """Walk the chain again as the database now holds it (same transaction): what verify_audit will see."""
    from audit.selectors import EVENT_FIELDS  # noqa: PLC0415

    event_model = apps.get_model("audit.AuditEvent")

    def stored() -> Iterator[dict]:
        rows = (
            event_model.objects.using(using)
            .filter(client_id=backup.client_id)
            .order_by("chain", "seq")
            .values_list(*EVENT_FIELDS)
        )
        for values in rows.iterator(chunk_size=CHUNK):
            event = dict(zip(EVENT_FIELDS, values, strict=True))
            event["client_id"] = str(event["client_id"])
            yield event

    _check_audit_chain(backup, stored)
