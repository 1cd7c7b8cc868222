"""The vault's cryptography: round trips, and a specific error — never a wrong plaintext — for every fault."""

from __future__ import annotations

import base64
import importlib
import re
import uuid

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

import config.wsgi
from vault import envelope, keyring
from vault.envelope import Context
from vault.errors import ClientErased, DecryptionFailed, KeyRingError, MalformedCiphertext, UnknownKey
from vault.keys import ClientKeys, data_key_context, new_data_key, unwrap, wrap

CONTEXT = Context("secret", str(uuid.uuid4()), str(uuid.uuid4()))


def ring_text(*ids: str) -> str:
    return ",".join(keyring.generate(key_id) for key_id in ids)


@pytest.fixture
def ring(settings):
    settings.FLOWS_MASTER_KEYS = ring_text("primary", "older")
    settings.FLOWS_MASTER_KEYS_FILE = ""
    return keyring.load()


# --- Key ring ------------------------------------------------------------------------------------


def test_the_first_key_is_primary_and_keys_never_show_in_a_repr(ring):
    assert ring.primary.id == "primary" and ring.ids == ["primary", "older"]
    assert base64.b64encode(ring.primary.key).decode() not in repr(ring)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("nocolon", "entry 1 is not '<id>:<base64 key>'"),
        ("bad id!:AAAA", "entry 1 is not"),
        ("k1:not*base64", "key 'k1' is not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "key 'k1' is 5 bytes; master keys are 32 bytes"),
        (f"{keyring.generate('k1')},{keyring.generate('k1')}", "key id 'k1' appears twice"),
    ],
)
def test_a_malformed_key_ring_names_the_problem_and_never_the_key(text, message):
    with pytest.raises(KeyRingError, match=message) as caught:
        keyring.parse(text)
    key_part = text.partition(":")[2]
    if len(key_part) >= 8:
        assert key_part[:8] not in caught.value.message


def test_the_key_ring_can_come_from_a_file(settings, tmp_path):
    path = tmp_path / "master.keys"
    path.write_text(f"# production ring\n{keyring.generate('k2')}\n{keyring.generate('k1')}\n")
    settings.FLOWS_MASTER_KEYS, settings.FLOWS_MASTER_KEYS_FILE = "", str(path)
    assert keyring.load().ids == ["k2", "k1"]


def test_a_missing_or_malformed_key_ring_is_a_system_check_error(settings):
    settings.FLOWS_MASTER_KEYS, settings.FLOWS_MASTER_KEYS_FILE = "", ""
    errors = run_checks(tags=["vault"])
    assert [error.id for error in errors] == ["vault.E001"] and "No master keys" in errors[0].msg
    settings.FLOWS_MASTER_KEYS = "k1:AAAA"
    assert "3 bytes" in run_checks(tags=["vault"])[0].msg
    settings.FLOWS_MASTER_KEYS = keyring.generate("k1")
    assert run_checks(tags=["vault"]) == []


# --- Envelope ------------------------------------------------------------------------------------


@given(st.binary(max_size=2048))
def test_round_trip(plaintext):
    cipher = AESGCM(new_data_key())
    assert envelope.open_sealed(cipher, envelope.seal(cipher, "dk:1", plaintext, CONTEXT), CONTEXT) == plaintext


def test_the_format_is_self_describing():
    blob = envelope.seal(AESGCM(new_data_key()), "dk:7", b"value", CONTEXT)
    assert blob[0] == 1 and blob[1] == 4 and blob[2:6] == b"dk:7"
    assert envelope.key_ref(blob) == "dk:7"
    assert len(blob) == 2 + 4 + 12 + len(b"value") + 16


@pytest.mark.parametrize("position", [0, 1, 3, 8, 20, -1])
def test_any_altered_byte_is_refused(position):
    cipher = AESGCM(new_data_key())
    blob = bytearray(envelope.seal(cipher, "dk:1", b"the value", CONTEXT))
    blob[position] ^= 0x01
    with pytest.raises((DecryptionFailed, MalformedCiphertext)):
        envelope.open_sealed(cipher, bytes(blob), CONTEXT)


@pytest.mark.parametrize(
    "moved",
    [
        Context("secret", CONTEXT.client_id, str(uuid.uuid4())),  # another record
        Context("secret", str(uuid.uuid4()), CONTEXT.record_id),  # another client
        Context("invitee", CONTEXT.client_id, CONTEXT.record_id),  # another purpose
    ],
)
def test_a_ciphertext_moved_elsewhere_does_not_decrypt(moved):
    cipher = AESGCM(new_data_key())
    blob = envelope.seal(cipher, "dk:1", b"the value", CONTEXT)
    with pytest.raises(DecryptionFailed, match="does not authenticate"):
        envelope.open_sealed(cipher, blob, moved)


@pytest.mark.parametrize(
    "blob", [b"", b"\x02\x04dk:1" + bytes(40), b"\x01\x00" + bytes(40), b"\x01\x04dk:1" + bytes(5)]
)
def test_garbage_is_malformed_not_a_crash(blob):
    with pytest.raises(MalformedCiphertext):
        envelope.open_sealed(AESGCM(new_data_key()), blob, CONTEXT)


# --- Wrapping and client keys -------------------------------------------------------------------


def test_wrapping_names_the_master_key_and_a_wrong_or_unknown_one_is_a_specific_error(ring, settings):
    raw = new_data_key()
    context = data_key_context(CONTEXT.client_id, 1)
    wrapped, master_key_id = wrap(raw, context)
    assert master_key_id == "primary" and envelope.key_ref(wrapped) == "mk:primary"
    assert unwrap(wrapped, context, what="key") == raw

    settings.FLOWS_MASTER_KEYS = ring_text("primary")  # same id, different key
    with pytest.raises(DecryptionFailed, match="does not unwrap with master key 'primary'"):
        unwrap(wrapped, context, what="key")
    settings.FLOWS_MASTER_KEYS = ring_text("other")
    with pytest.raises(UnknownKey, match="Master key 'primary' is not in the key ring"):
        unwrap(wrapped, context, what="key")


def _client_keys(versions: dict[int, bytes], active: int | None, *, erased=False) -> ClientKeys:
    client_id = CONTEXT.client_id
    wrapped = {version: wrap(raw, data_key_context(client_id, version))[0] for version, raw in versions.items()}
    return ClientKeys(client_id=client_id, client_code="acme", wrapped=wrapped, active_version=active, erased=erased)


def test_client_keys_encrypt_under_the_active_version_and_decrypt_older_ones(ring):
    v1, v2 = new_data_key(), new_data_key()
    old = _client_keys({1: v1}, 1).encrypt(b"old", purpose="secret", record_id="r1")
    keys = _client_keys({1: v1, 2: v2}, 2)
    new, version = keys.encrypt(b"new", purpose="secret", record_id="r2")
    assert version == 2 and old[1] == 1
    assert keys.decrypt(old[0], purpose="secret", record_id="r1") == b"old"
    assert keys.decrypt(new, purpose="secret", record_id="r2") == b"new"
    with pytest.raises(UnknownKey, match="no data key v2"):
        _client_keys({1: v1}, 1).decrypt(new, purpose="secret", record_id="r2")


def test_a_wrapped_data_key_moved_to_another_version_or_client_does_not_unwrap(ring):
    raw = new_data_key()
    wrapped = wrap(raw, data_key_context(CONTEXT.client_id, 1))[0]
    keys = ClientKeys(
        client_id=CONTEXT.client_id, client_code="acme", wrapped={2: wrapped}, active_version=2, erased=False
    )
    with pytest.raises(DecryptionFailed, match="Data key v2 of acme does not unwrap"):
        keys.encrypt(b"x", purpose="secret", record_id="r")


def test_an_erased_clients_keys_refuse_with_a_clear_error(ring):
    keys = _client_keys({}, None, erased=True)
    with pytest.raises(ClientErased, match="was erased"):
        keys.decrypt(b"\x01\x04dk:1" + bytes(40), purpose="secret", record_id="r")
    with pytest.raises(ClientErased):
        keys.encrypt(b"x", purpose="secret", record_id="r")


def test_client_keys_write_and_read_exactly_the_documented_envelope(ring):
    raw = new_data_key()
    keys = _client_keys({1: raw}, 1)
    blob, _ = keys.encrypt(b"fast path", purpose="secret", record_id="r1")
    assert envelope.open_sealed(AESGCM(raw), blob, Context("secret", CONTEXT.client_id, "r1")) == b"fast path"
    sealed = envelope.seal(AESGCM(raw), "dk:1", b"reference", Context("secret", CONTEXT.client_id, "r2"))
    assert keys.decrypt(sealed, purpose="secret", record_id="r2") == b"reference"
    with pytest.raises(DecryptionFailed):
        keys.decrypt(sealed, purpose="invitee", record_id="r2")
    for bad in (b"\x01", blob[:20], b"\x02" + blob[1:]):
        with pytest.raises(MalformedCiphertext):
            keys.decrypt(bad, purpose="secret", record_id="r2")


def test_a_nul_in_an_associated_data_field_is_refused(ring):
    keys = _client_keys({1: new_data_key()}, 1)
    with pytest.raises(ValueError, match="NUL"):
        keys.encrypt(b"x", purpose="secret", record_id="r\x00")
    with pytest.raises(ValueError, match="NUL"):
        keys.encrypt(b"x", purpose="sec\x00ret", record_id="r")


def test_the_wsgi_application_does_not_start_without_a_valid_key_ring(settings):
    settings.FLOWS_MASTER_KEYS = "broken"
    with pytest.raises(ImproperlyConfigured, match=re.escape("vault.E001: FLOWS_MASTER_KEYS: entry 1")):
        importlib.reload(config.wsgi)
    settings.FLOWS_MASTER_KEYS = keyring.generate("k1")
    importlib.reload(config.wsgi)
