"""Master keys (key-encryption keys): read from the environment or a file, never stored in the database, never logged.

Format, in `FLOWS_MASTER_KEYS` or one entry per line in the file `FLOWS_MASTER_KEYS_FILE`:

    <id>:<base64 of 32 random bytes>[,<id>:<base64>...]

The first entry is the primary: it wraps every new data key and signing key. Older entries stay
in the ring until `rotate_keys --master` has re-wrapped everything and
`rotate_keys --retire-master <id>` has confirmed nothing depends on them.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from django.conf import settings

from vault.errors import KeyRingError, UnknownKey

KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}\Z")  # \Z: `$` would accept a final newline
KEY_BYTES = 32


@dataclass(frozen=True)
class MasterKey:
    id: str
    key: bytes = field(repr=False)  # never in a repr, a log line or a traceback's locals summary


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[MasterKey, ...]

    @property
    def primary(self) -> MasterKey:
        return self.keys[0]

    @property
    def ids(self) -> list[str]:
        return [key.id for key in self.keys]

    def get(self, key_id: str) -> MasterKey:
        for key in self.keys:
            if key.id == key_id:
                return key
        raise UnknownKey(f"Master key '{key_id}' is not in the key ring (it holds: {', '.join(self.ids)}).")


def parse(text: str, *, source: str = "FLOWS_MASTER_KEYS") -> KeyRing:
    """A key ring from its text form; KeyRingError naming the entry (by position and id, never the key) otherwise."""
    entries = [
        entry.strip() for entry in re.split(r"[,\n]", text) if entry.strip() and not entry.strip().startswith("#")
    ]
    if not entries:
        raise KeyRingError(
            f"{source} is empty: set it to '<id>:<base64 key>' (manage.py generate_master_key makes one)."
        )
    keys: list[MasterKey] = []
    for position, entry in enumerate(entries, start=1):
        key_id, sep, encoded = entry.partition(":")
        if not sep or not KEY_ID.match(key_id):
            raise KeyRingError(
                f"{source}: entry {position} is not '<id>:<base64 key>' with an id of 1-32 letters, digits, '-' or '_'."
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyRingError(f"{source}: key '{key_id}' is not valid base64.") from None
        if len(key) != KEY_BYTES:
            raise KeyRingError(f"{source}: key '{key_id}' is {len(key)} bytes; master keys are {KEY_BYTES} bytes.")
        if any(existing.id == key_id for existing in keys):
            raise KeyRingError(f"{source}: key id '{key_id}' appears twice.")
        keys.append(MasterKey(key_id, key))
    return KeyRing(tuple(keys))


def load() -> KeyRing:
    """The configured key ring (parsed once per distinct configuration)."""
    return _load(settings.FLOWS_MASTER_KEYS, settings.FLOWS_MASTER_KEYS_FILE)


@cache
def _load(inline: str, path: str) -> KeyRing:
    if inline and path:
        raise KeyRingError("Set FLOWS_MASTER_KEYS or FLOWS_MASTER_KEYS_FILE, not both.")
    if path:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise KeyRingError(f"FLOWS_MASTER_KEYS_FILE {path}: cannot be read ({error.strerror}).") from None
        return parse(text, source=f"FLOWS_MASTER_KEYS_FILE {path}")
    if not inline:
        raise KeyRingError(
            "No master keys: set FLOWS_MASTER_KEYS (or FLOWS_MASTER_KEYS_FILE); "
            "manage.py generate_master_key makes one."
        )
    return parse(inline)


def generate(key_id: str | None = None) -> str:
    """A new master key entry, `<id>:<base64>`; the id defaults to the date and a random suffix."""
    key_id = key_id or f"mk{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"
    if not KEY_ID.match(key_id):
        raise KeyRingError("A master key id is 1-32 letters, digits, '-' or '_'.")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"
