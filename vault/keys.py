"""Key handling: wrapping data keys and signing keys under master keys, and a client's data keys ready to use.

Everything here is pure cryptography over rows the caller loaded; the writes live in services.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault import envelope, keyring
from vault.envelope import Context
from vault.errors import ClientErased, DecryptionFailed, UnknownKey, VaultError

DATA_KEY_BYTES = 32
MASTER_REF = "mk:"
DATA_REF = "dk:"


def new_data_key() -> bytes:
    return os.urandom(DATA_KEY_BYTES)


def data_key_context(client_id, version: int) -> Context:
    return Context("data-key", str(client_id), f"v{version}")


def wrap(raw: bytes, context: Context) -> tuple[bytes, str]:
    """`raw` sealed under the primary master key: (wrapped bytes, master key id)."""
    primary = keyring.load().primary
    return envelope.seal(AESGCM(primary.key), MASTER_REF + primary.id, raw, context), primary.id


def unwrap(wrapped: bytes, context: Context, *, what: str) -> bytes:
    ref = envelope.key_ref(wrapped)
    if not ref.startswith(MASTER_REF):
        raise UnknownKey(f"{what} is not wrapped by a master key (key reference {ref!r}).")
    master = keyring.load().get(ref.removeprefix(MASTER_REF))
    try:
        return envelope.open_sealed(AESGCM(master.key), wrapped, context)
    except DecryptionFailed:
        raise DecryptionFailed(
            f"{what} does not unwrap with master key '{master.id}': the key ring holds a different key "
            "under that id, or the wrapped key was altered."
        ) from None


class ClientKeys:
    """One client's data keys, unwrapped on first use. Encrypts under the active version, decrypts any live one.

    Built by `vault.selectors.client_keys(client)` from the client's data key rows; hold it for
    the length of an operation (it is the cache that makes bulk work cheap), not across requests,
    so that rotation and erasure take effect.
    """

    def __init__(
        self, *, client_id, client_code: str, wrapped: dict[int, bytes], active_version: int | None, erased: bool
    ):
        self.client_id = client_id
        self.client_code = client_code
        self.active_version = active_version
        self.erased = erased
        self._wrapped = wrapped
        self._ciphers: dict[int, AESGCM] = {}

    def encrypt(self, plaintext: bytes, *, purpose: str, record_id: str) -> tuple[bytes, int]:
        """(ciphertext, data key version) of `plaintext`, bound to this client, `purpose` and `record_id`."""
        if self.erased:
            raise self._erased()
        if self.active_version is None:
            raise VaultError(f"Client {self.client_code} has no active data key.", code="no_data_key")
        version = self.active_version
        blob = envelope.seal(
            self._cipher(version), f"{DATA_REF}{version}", plaintext, self._context(purpose, record_id)
        )
        return blob, version

    def decrypt(self, blob: bytes, *, purpose: str, record_id: str) -> bytes:
        if self.erased:
            raise self._erased()
        ref = envelope.key_ref(blob)
        version = ref.removeprefix(DATA_REF)
        if not ref.startswith(DATA_REF) or not version.isdigit():
            raise UnknownKey(f"Ciphertext names key {ref!r}, not a data key of client {self.client_code}.")
        return envelope.open_sealed(self._cipher(int(version)), blob, self._context(purpose, record_id))

    def version_of(self, blob: bytes) -> int:
        return int(envelope.key_ref(blob).removeprefix(DATA_REF))

    def _context(self, purpose: str, record_id: str) -> Context:
        return Context(purpose, str(self.client_id), record_id)

    def _cipher(self, version: int) -> AESGCM:
        cipher = self._ciphers.get(version)
        if cipher is None:
            wrapped = self._wrapped.get(version)
            if wrapped is None:
                raise UnknownKey(f"Client {self.client_code} has no data key v{version}.")
            raw = unwrap(
                wrapped, data_key_context(self.client_id, version), what=f"Data key v{version} of {self.client_code}"
            )
            cipher = self._ciphers[version] = AESGCM(raw)
        return cipher

    def _erased(self) -> ClientErased:
        return ClientErased(
            f"Client {self.client_code} was erased: its data keys are destroyed and its encrypted data cannot be read."
        )
