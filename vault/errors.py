"""The vault's errors: each failure has its own code, and none ever yields a wrong plaintext."""

from config.errors import FlowsError


class VaultError(FlowsError):
    code = "vault_error"
    http_status = 500


class KeyRingError(VaultError):
    """The master key ring is missing or malformed (a configuration error)."""

    code = "key_ring_invalid"


class UnknownKey(VaultError):
    """A ciphertext or wrapped key names a key this process does not have."""

    code = "unknown_key"


class MalformedCiphertext(VaultError):
    code = "malformed_ciphertext"


class DecryptionFailed(VaultError):
    """AES-GCM refused: the ciphertext was altered, moved to another record, or the key is not the one used."""

    code = "decryption_failed"


class ClientErased(VaultError):
    """The client's data keys were destroyed (crypto-shredding): its encrypted data is gone for good."""

    code = "client_erased"
    http_status = 410
