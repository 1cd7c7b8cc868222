"""Key handling: wrapping data keys and signing keys under master keys, and a client's data keys ready to use.

Everything here is pure cryptography over rows the caller loaded; the writes live in services.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault import envelope, keyring
from vault.envelope import Context
from vault.errors import ClientErased, DecryptionFailed, UnknownKey, VaultError

DATA_KEY_BYTES = 32
MASTER_REF = "mk:"
DATA_REF = "dk:"
_NONCE = envelope.NONCE_BYTES


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

    The hot paths write and read the `vault.envelope` format directly, with the per-version
    header, cipher and the client's associated-data field computed once (docs/performance.md).
    """

    def __init__(
        self, *, client_id, client_code: str, wrapped: dict[int, bytes], active_version: int | None, erased: bool
    ):
        self.client_id = client_id
        self.client_code = client_code
        self.active_version = active_version
        self.erased = erased
        self._wrapped = wrapped
        self._client_field = envelope.field(str(client_id))
        self._by_version: dict[int, tuple[bytes, AESGCM]] = {}  # version → (header, cipher)
        self._raw: dict[int, bytes] = {}
        # Hot-path caches: everything but the record id is the same for every value of a purpose.
        self._sealing: dict[str, tuple[bytes, AESGCM, bytes]] = {}  # purpose → (header, cipher, aad prefix)
        self._opening: dict[str, dict[bytes, tuple[AESGCM, bytes]]] = {}  # purpose → header → (cipher, aad prefix)

    def encrypt(self, plaintext: bytes, *, purpose: str, record_id: str) -> tuple[bytes, int]:
        """(ciphertext, data key version) of `plaintext`, bound to this client, `purpose` and `record_id`."""
        if self.erased:
            raise self._erased()
        try:
            head, cipher, prefix = self._sealing[purpose]
        except KeyError:
            head, cipher, prefix = self._sealing_entry(purpose)
        if "\x00" in record_id:  # envelope.field(), inlined on the hot path
            raise ValueError("associated data fields cannot contain NUL")
        nonce = os.urandom(_NONCE)
        return head + nonce + cipher.encrypt(nonce, plaintext, prefix + record_id.encode()), self.active_version

    def decrypt(self, blob: bytes, *, purpose: str, record_id: str) -> bytes:
        if self.erased:
            raise self._erased()
        if type(blob) is not bytes:
            blob = bytes(blob)
        try:  # the common case: a well-formed ciphertext under a version already unwrapped
            end = blob[1] + 2
            cipher, prefix = self._opening[purpose][blob[:end]]
        except (IndexError, KeyError):
            cipher, prefix, end = self._opening_entry(blob, purpose)
        nonce_end = end + _NONCE
        if len(blob) < nonce_end + envelope.TAG_BYTES:
            envelope.split(blob)  # raises MalformedCiphertext
        if "\x00" in record_id:  # envelope.field(), inlined on the hot path
            raise ValueError("associated data fields cannot contain NUL")
        try:
            return cipher.decrypt(blob[end:nonce_end], blob[nonce_end:], prefix + record_id.encode())
        except InvalidTag:
            raise DecryptionFailed(
                f"Ciphertext under {envelope.key_ref(blob)} does not authenticate: it was altered, belongs to another "
                f"{purpose} record or client, or the key is not the one it was sealed with."
            ) from None

    def _sealing_entry(self, purpose: str) -> tuple[bytes, AESGCM, bytes]:
        if self.active_version is None:
            raise VaultError(f"Client {self.client_code} has no active data key.", code="no_data_key")
        head, cipher = self._version(self.active_version)
        entry = self._sealing[purpose] = (head, cipher, self._aad_prefix(head, purpose))
        return entry

    def _opening_entry(self, blob: bytes, purpose: str) -> tuple[AESGCM, bytes, int]:
        envelope.split(blob)  # raises MalformedCiphertext for a bad shape
        head, cipher = self._version(self.version_of(blob))
        prefix = self._aad_prefix(head, purpose)
        self._opening.setdefault(purpose, {})[head] = (cipher, prefix)
        return cipher, prefix, len(head)

    def _aad_prefix(self, head: bytes, purpose: str) -> bytes:
        """The associated data up to the record id: the envelope's layout, computed once per version and purpose."""
        return envelope.associated_data(head, envelope.field(purpose), self._client_field, b"")

    def version_of(self, blob: bytes) -> int:
        ref = envelope.key_ref(blob)
        version = ref.removeprefix(DATA_REF)
        if not ref.startswith(DATA_REF) or not version.isdigit():
            raise UnknownKey(f"Ciphertext names key {ref!r}, not a data key of client {self.client_code}.")
        return int(version)

    @property
    def live_versions(self) -> list[int]:
        """The versions that still decrypt, the active one first."""
        return sorted(self._wrapped, key=lambda version: (version != self.active_version, -version))

    def derived_key(self, version: int, info: bytes) -> bytes:
        """A 256-bit key derived (HKDF-SHA256) from a data key version for one use named by `info`.

        For keyed hashes that must die with the client's keys (erasure), never for encryption.
        """
        self._version(version)
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self._raw[version])

    def _version(self, version: int) -> tuple[bytes, AESGCM]:
        """(header, cipher) of a data key version, unwrapping it on first use."""
        if entry := self._by_version.get(version):
            return entry
        wrapped = self._wrapped.get(version)
        if wrapped is None:
            raise UnknownKey(f"Client {self.client_code} has no data key v{version}.")
        raw = unwrap(
            wrapped, data_key_context(self.client_id, version), what=f"Data key v{version} of {self.client_code}"
        )
        self._raw[version] = raw
        entry = self._by_version[version] = (envelope.header(f"{DATA_REF}{version}"), AESGCM(raw))
        return entry

    def _erased(self) -> ClientErased:
        return ClientErased(
            f"Client {self.client_code} was erased: its data keys are destroyed and its encrypted data cannot be read."
        )
