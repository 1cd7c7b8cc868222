"""verify_audit's per-event check over rows streamed by COPY: each event's mac and hash, in any order.

An event's hash covers its previous hash and its fields, and its mac covers its hash, so each
event can be checked on its own, as the rows come off the disk: no ordering, no Python objects
per row beyond the bytes of its line. The chain's structure (gaps, order, links, head) is checked
apart, in SQL (audit.verification.fast_walk).

This module imports no Django: the check can run in worker processes (multiprocessing's spawn).

The canonical JSON is built from the COPY text directly when every text field is plain (printable
ASCII without quotes or backslashes: JSON writes those as they are); any other row is decoded and
encoded with json's own string encoder, which is what `json.dumps` uses. Either way the bytes are
a faithful JSON encoding of the stored values, so an equal SHA-256 means an unchanged event; an
unequal one is re-checked by the caller through the original path (audit.services.hashed_fields)
before it is reported, so a formatting corner this module does not know (a timestamp outside
years 1-9999, a float the database writes differently) can never be reported as an edit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

# The one canonical encoder: json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str), built once
# (audit.services hashes with it too).
canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
_encode_string = json.encoder.encode_basestring_ascii
# json.loads without its two whitespace regular expressions per call (jsonb's text has no outer whitespace).
_scan = json.JSONDecoder().scan_once

# The columns COPY writes, in this order (changes last: its JSON has quotes, the others usually none).
COPY_COLUMNS = (
    "id", "client_id", "chain", "seq", "prev_hash", "hash", "key_id", "mac", "action", "actor_id", "actor_label",
    "actor_type", "client_code", "ip", "occurred_at", "request_id", "target_id", "target_label", "target_type",
    "user_agent", "changes",
)  # fmt: skip
# A keyed event's canonical JSON, keys in sorted order (audit.services.hashed_fields).
_TEMPLATE = (
    b'{"action":"%s","actor_id":"%s","actor_label":"%s","actor_type":"%s","chain":"%s","changes":%s,'
    b'"client_code":"%s","client_id":%s,"ip":%s,"key_id":"%s","occurred_at":"%s","request_id":"%s","target_id":"%s",'
    b'"target_label":"%s","target_type":"%s","user_agent":"%s"}'
)
_COPY_ESCAPE = re.compile(rb"\\(.)")
_COPY_ESCAPES = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v", b"\\": b"\\"}


def copy_unescape(field: bytes) -> bytes:
    """A field of COPY's text format as stored (COPY TO writes only these backslash escapes)."""
    return _COPY_ESCAPE.sub(lambda match: _COPY_ESCAPES.get(match[1], match[1]), field)


def _escaped(field: bytes) -> bytes:
    """A COPY text field as it stands between the quotes of its JSON string."""
    return _encode_string(copy_unescape(field).decode()).encode()[1:-1]


def _iso(stamp: bytes) -> bytes:
    """`2026-11-23 02:37:41.12+00` (timestamptz text, UTC, DateStyle ISO) as datetime.isoformat() writes it."""
    body = stamp[:-3] if stamp.endswith(b"+00") else stamp
    if len(body) > 19:
        body = body.ljust(26, b"0")
    return body[:10] + b"T" + body[11:] + b"+00:00"


def canonical(fields: list[bytes]) -> bytes:
    """The canonical JSON of a keyed event from its COPY fields (COPY_COLUMNS order, NULL written as '')."""
    (_, client_id, chain, _, _, _, key_id, _, action, actor_id, actor_label, actor_type, client_code, ip,
     occurred_at, request_id, target_id, target_label, target_type, user_agent, changes) = fields  # fmt: skip
    if b"\\" in changes:
        changes = changes.replace(b"\\\\", b"\\")  # jsonb text has no control characters: only \\ is escaped
    changes = canonical_json(_scan(changes.decode(), 0)[0]).encode()
    client_id = b'"%s"' % client_id if client_id else b"null"
    ip = b'"%s"' % ip if ip else b"null"
    texts = (action, actor_id, actor_label, actor_type, chain, client_code, key_id, request_id, target_id,
             target_label, target_type, user_agent)  # fmt: skip
    joined = b"".join(texts)
    # Printable ASCII without quotes or backslashes (COPY writes control characters with one) stands in JSON as is.
    if not (joined.isascii() and b"\\" not in joined and b'"' not in joined and b"\x7f" not in joined):
        (action, actor_id, actor_label, actor_type, chain, client_code, key_id, request_id, target_id, target_label,
         target_type, user_agent) = [_escaped(text) for text in texts]  # fmt: skip
    return _TEMPLATE % (
        action, actor_id, actor_label, actor_type, chain, changes, client_code, client_id, ip, key_id,
        _iso(occurred_at), request_id, target_id, target_label, target_type, user_agent,
    )  # fmt: skip


def check_lines(
    data: bytes, keys: dict[bytes, bytes], skipped: frozenset
) -> tuple[int, list[tuple[str, bytes, bytes, bytes, str]], list[int]]:
    """Check every keyed event in `data` (whole COPY lines): (events checked, problems, ids to re-check).

    A problem is (kind, chain, id, seq, detail), as ChainWalker._check_authentic words it. Events of
    the chains in `skipped` ((client_id, chain) as COPY writes them) and unkeyed (legacy) events are
    left to the ordered walk. An event whose mac verifies but whose hash this module's encoding does
    not reproduce goes to the ids to re-check.
    """
    sha256 = hashlib.sha256
    digest = hmac.digest
    checked = 0
    problems: list[tuple[str, bytes, bytes, bytes, str]] = []
    recheck: list[int] = []
    for line in data.split(b"\n"):
        if not line:
            continue
        fields = line.split(b"\t")
        key_id = fields[6]
        if not key_id or (skipped and (fields[1], fields[2]) in skipped):
            continue
        checked += 1
        key = keys.get(key_id)
        if key is None:
            detail = f"key id {copy_unescape(key_id).decode()!r} is not in FLOWS_AUDIT_KEYS"
            problems.append(("forged", fields[2], fields[0], fields[3], detail))
            continue
        hash_ = fields[5]
        if digest(key, hash_, "sha256").hex().encode() != fields[7]:
            problems.append(
                ("forged", fields[2], fields[0], fields[3], "its mac does not verify: not written with the audit key")
            )
            continue
        try:
            matches = sha256(b"%s\n%s" % (fields[4], canonical(fields))).hexdigest().encode() == hash_
        except (ValueError, UnicodeDecodeError):
            matches = False
        if not matches:
            recheck.append(int(fields[0]))
    return checked, problems, recheck
