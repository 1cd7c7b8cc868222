"""Vault services on the real database: secrets and their access log, rotation, rewrap, erasure, isolation."""

from __future__ import annotations

import json
import logging

import psycopg
import pytest
from django.contrib.auth.models import Permission, User
from django.db import DEFAULT_DB_ALIAS

from audit.models import AuditEvent
from clients import services as client_services
from clients.tenancy import tenant_context
from config.errors import Forbidden, InvalidInput, Refused
from tests.conftest import connect_as
from vault import keyring, services
from vault.errors import ClientErased, UnknownKey
from vault.models import DataKey, Secret, SecretAccess
from vault.selectors import client_keys, get_secret, key_ring_problems, secrets_on_old_versions, vault_status

VALUE = "xoxb-1111-very-secret-token"

db = pytest.mark.django_db(databases="__all__")


def reveal(secret: Secret) -> str:
    return services.reveal_secret(
        actor=None, secret=Secret.objects.get(pk=secret.pk), reason="checking rotation"
    ).decode()


def store(client, value: str = VALUE, **fields) -> Secret:
    fields = {"provider": "slack", "secret_type": "api_key", **fields}
    return services.set_secret(actor=None, client=client, value=value, **fields)


@db
def test_a_client_gets_a_data_key_when_created(make_client):
    acme = make_client("acme")
    key = DataKey.objects.get(client=acme)
    assert (key.version, key.status) == (1, DataKey.Status.ACTIVE) and len(bytes(key.wrapped_key)) > 32
    assert key.master_key_id == keyring.load().primary.id


@db
def test_set_creates_then_replaces_and_never_records_the_value(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    acme = make_client("acme")
    secret = store(acme, description="Slack bot", tags=["Chat", "chat", " ops "])
    assert (secret.name, secret.tags, secret.data_key_version) == ("slack-api_key", ["chat", "ops"], 1)
    assert VALUE.encode() not in bytes(secret.ciphertext)
    assert reveal(secret) == VALUE

    replaced = store(acme, value="xoxb-2222")
    assert replaced.pk == secret.pk and reveal(replaced) == "xoxb-2222"
    assert Secret.objects.count() == 1

    events = AuditEvent.objects.filter(target_id=str(secret.pk)).order_by("seq")
    assert [e.action for e in events] == ["secret.created", "secret.revealed", "secret.updated", "secret.revealed"]
    # What happened to the value is recorded ("set", "replaced"); the value itself never is.
    assert [e.changes.get("value") for e in events] == ["set", None, "replaced", None]
    trail = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert VALUE not in trail and "xoxb-2222" not in trail
    accesses = SecretAccess.objects.filter(secret_id=secret.pk).order_by("id")
    assert [a.access_type for a in accesses] == ["create", "reveal", "update", "reveal"]
    assert accesses[1].reason == "checking rotation"
    assert VALUE not in caplog.text and "xoxb-2222" not in caplog.text


@db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"value": ""}, "value is empty"),
        ({"value": "x" * 70_000}, "larger than 65536 bytes"),
        ({"secret_type": "magic"}, "secret_type"),
        ({"provider": "Not A Slug!"}, "provider"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(make_client, fields, message):
    acme = make_client("acme")
    with pytest.raises(InvalidInput, match=message):
        store(acme, **fields)
    assert not Secret.objects.exists() and not SecretAccess.objects.exists()


@db
def test_use_counts_and_logs_and_refuses_inactive_or_expired(make_client):
    acme = make_client("acme")
    secret = store(acme)
    assert services.use_secret(actor=None, secret=secret) == VALUE.encode()
    secret.refresh_from_db()
    assert secret.usage_count == 1 and secret.last_used_at is not None
    services.deactivate_secret(actor=None, secret=secret)
    services.deactivate_secret(actor=None, secret=secret)  # safe to re-run
    with pytest.raises(Refused, match="deactivated"):
        services.use_secret(actor=None, secret=secret)
    assert SecretAccess.objects.filter(secret_id=secret.pk, access_type="deactivate").count() == 1


@db
def test_revealing_needs_the_permission_and_a_reason(make_client):
    acme = make_client("acme")
    secret = store(acme)
    staff = User.objects.create_user("sam", is_staff=True)
    with pytest.raises(Forbidden, match="permission"):
        services.reveal_secret(actor=staff, secret=secret, reason="debugging the integration")
    staff.user_permissions.add(Permission.objects.get(codename="reveal_secret"))
    staff = User.objects.get(pk=staff.pk)  # permissions are cached per instance
    with pytest.raises(InvalidInput, match="Say why"):
        services.reveal_secret(actor=staff, secret=secret, reason="  ")
    assert services.reveal_secret(actor=staff, secret=secret, reason="debugging the integration") == VALUE.encode()
    access = SecretAccess.objects.get(access_type="reveal")
    assert (access.actor_label, access.reason) == ("sam", "debugging the integration")


@db
def test_deleting_keeps_the_access_log_and_the_audit_trail(make_client):
    acme = make_client("acme")
    secret = store(acme)
    services.delete_secret(actor=None, secret=secret)
    assert not Secret.objects.exists()
    assert [a.access_type for a in SecretAccess.objects.order_by("id")] == ["create", "delete"]
    assert AuditEvent.objects.filter(action="secret.deleted", target_label="slack-api_key").exists()


@db
def test_rotate_decrypt_rewrap_decrypt_then_retire_the_old_master_key(make_client, settings):
    acme, globex = make_client("acme"), make_client("globex")
    secrets = [store(acme, provider=f"p{n}") for n in range(5)] + [store(globex)]
    old_master = keyring.load().primary.id

    # A new data key version for acme: old values still decrypt.
    services.create_data_key(actor=None, client=acme)
    assert [reveal(s) for s in secrets] == [VALUE] * 6
    assert secrets_on_old_versions().count() == 5

    # A new primary master key: re-wrap data keys only, then everything still decrypts.
    settings.FLOWS_MASTER_KEYS = f"{keyring.generate('next')},{settings.FLOWS_MASTER_KEYS}"
    with pytest.raises(Refused, match="still wraps 3 data key"):
        services.retire_master_key(actor=None, key_id=old_master)
    result = services.rotate_master_key(actor=None, batch_size=2)
    assert (result["data_keys"], result["primary"]) == (3, "next")
    assert set(DataKey.objects.values_list("master_key_id", flat=True)) == {"next"}

    # Move every value to the newest data key version.
    assert services.rewrap(actor=None, dry_run=True) == {"pending": 5, "rewrapped": 0, "dry_run": True}
    assert services.rewrap(actor=None, batch_size=2)["rewrapped"] == 5
    assert secrets_on_old_versions().count() == 0
    assert set(Secret.objects.filter(client=acme).values_list("data_key_version", flat=True)) == {2}

    # Nothing depends on the old master key: it can be retired and removed from the ring.
    services.retire_master_key(actor=None, key_id=old_master)
    settings.FLOWS_MASTER_KEYS = settings.FLOWS_MASTER_KEYS.split(",")[0]
    assert [reveal(s) for s in secrets] == [VALUE] * 6
    with pytest.raises(Refused, match="is the primary"):
        services.retire_master_key(actor=None, key_id="next")


@db
def test_without_the_master_key_a_value_is_an_unknown_key_error_not_a_crash(make_client, settings):
    acme = make_client("acme")
    secret = store(acme)
    settings.FLOWS_MASTER_KEYS = keyring.generate("someone-else")
    with pytest.raises(UnknownKey, match="is not in the key ring"):
        reveal(secret)


def test_a_rewrap_killed_halfway_leaves_every_value_readable_and_resumes(committed, make_client, monkeypatch):
    acme = make_client("acme")
    secrets = [store(acme, provider=f"p{n}") for n in range(7)]
    services.create_data_key(actor=None, client=acme)

    batches = []
    real_record = services.record

    def die_on_the_second_batch(**kwargs):
        if kwargs.get("action") == "secret.rewrapped":
            batches.append(1)
            if len(batches) == 2:
                raise KeyboardInterrupt  # the operator's Ctrl-C, mid-transaction
        return real_record(**kwargs)

    monkeypatch.setattr(services, "record", die_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        services.rewrap(actor=None, batch_size=3)
    monkeypatch.setattr(services, "record", real_record)

    versions = sorted(Secret.objects.values_list("data_key_version", flat=True))
    assert versions == [1, 1, 1, 1, 2, 2, 2]  # the first batch committed, the second rolled back
    assert [reveal(s) for s in secrets] == [VALUE] * 7
    assert services.rewrap(actor=None, batch_size=3)["rewrapped"] == 4
    assert [reveal(s) for s in secrets] == [VALUE] * 7
    assert AuditEvent.objects.filter(action="secret.rewrapped").count() == 3


@db
def test_erasure_makes_values_unreadable_with_a_clear_error_and_keeps_the_trail(make_client):
    acme, globex = make_client("acme"), make_client("globex")
    secret, other = store(acme), store(globex)
    with pytest.raises(InvalidInput, match="repeating the client's code"):
        client_services.erase_client(actor=None, client=acme, confirm="globex")

    client_services.erase_client(actor=None, client=acme, confirm="acme")
    client_services.erase_client(actor=None, client=acme, confirm="acme")  # safe to re-run
    acme.refresh_from_db()
    assert acme.status == "deactivated"
    assert set(DataKey.objects.filter(client=acme).values_list("status", flat=True)) == {"destroyed"}
    assert not DataKey.objects.filter(client=acme, wrapped_key__isnull=False).exists()
    with pytest.raises(ClientErased, match="acme was erased"):
        reveal(secret)
    with pytest.raises(ClientErased):
        client_keys(acme).decrypt(bytes(secret.ciphertext), purpose="secret", record_id=str(secret.pk))
    with pytest.raises(Refused, match="cannot be reactivated"):
        client_services.reactivate_client(actor=None, client=acme)
    with pytest.raises(Refused, match="erased"):
        services.create_data_key(actor=None, client=acme)
    assert reveal(other) == VALUE  # another client is untouched
    assert AuditEvent.objects.filter(client_id=acme.pk, action="client.erased").count() == 1
    assert AuditEvent.objects.filter(client_id=acme.pk, action="secret.created").exists()
    assert [c["erased"] for c in vault_status()["clients"]] == [True, False]


@db
def test_lookup_by_name_or_id(make_client):
    acme = make_client("acme")
    secret = store(acme)
    assert get_secret(acme, "SLACK-API_KEY") == secret == get_secret(acme, str(secret.pk))


def test_the_tenant_role_reads_only_its_own_secrets_and_data_keys(committed, make_client):
    acme, globex = make_client("acme"), make_client("globex")
    store(acme), store(globex)
    with tenant_context(acme):
        assert set(Secret.objects.values_list("client_id", flat=True)) == {acme.pk}
        assert set(DataKey.objects.values_list("client_id", flat=True)) == {acme.pk}
        assert set(SecretAccess.objects.values_list("client_id", flat=True)) == {acme.pk}
        secret = Secret.objects.select_related("client").get()
        assert services.use_secret(actor=None, secret=secret) == VALUE.encode()  # decrypts and logs as flows_app
    assert SecretAccess.objects.filter(client=acme, access_type="use").count() == 1


@pytest.mark.parametrize(
    "statement",
    ["UPDATE vault_secretaccess SET reason = 'x'", "DELETE FROM vault_secretaccess", "TRUNCATE vault_secretaccess"],
)
def test_the_access_log_refuses_changes_even_from_the_owner(committed, make_client, statement):
    store(make_client("acme"))
    with connect_as(DEFAULT_DB_ALIAS) as owner:
        owner.execute("ALTER TABLE vault_secretaccess NO FORCE ROW LEVEL SECURITY")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            owner.execute(statement)
        owner.rollback()
    assert SecretAccess.objects.count() == 1


@db
def test_health_problems_for_a_missing_or_wrong_master_key(make_client, settings):
    acme = make_client("acme")
    services.rotate_signing_key(actor=None)
    assert key_ring_problems() == []
    primary = keyring.load().primary.id
    settings.FLOWS_MASTER_KEYS = keyring.generate("other")
    assert key_ring_problems() == [
        f"vault: 2 key(s) are wrapped by master key '{primary}', which is not in the key ring"
    ]
    settings.FLOWS_MASTER_KEYS = keyring.generate(primary)  # right id, wrong key
    assert key_ring_problems() == [
        f"vault: master key '{primary}' in the key ring is not the key that wrapped {DataKey.objects.get(client=acme)}"
    ]
    settings.FLOWS_MASTER_KEYS = ""
    assert key_ring_problems() == ["vault: No master keys: set FLOWS_MASTER_KEYS (or FLOWS_MASTER_KEYS_FILE); "
                                   "manage.py generate_master_key makes one."]  # fmt: skip


def test_a_client_without_data_keys_is_still_marked_erased(committed, make_client):
    acme = make_client("acme")
    with connect_as(DEFAULT_DB_ALIAS) as owner:  # as for a client created before the vault existed
        owner.execute("ALTER TABLE vault_datakey NO FORCE ROW LEVEL SECURITY")
        owner.execute("DELETE FROM vault_datakey WHERE client_id = %s", [acme.pk])
        owner.execute("ALTER TABLE vault_datakey FORCE ROW LEVEL SECURITY")
        owner.commit()
    assert not DataKey.objects.filter(client=acme).exists()
    client_services.erase_client(actor=None, client=acme, confirm="acme")
    assert list(DataKey.objects.filter(client=acme).values_list("version", "status")) == [(1, "destroyed")]
    (erased,) = AuditEvent.objects.filter(client_id=acme.pk, action="client.erased")
    assert erased.changes["data_keys"] == 0  # none to destroy: the mark alone
    assert not AuditEvent.objects.filter(client_id=acme.pk, action="data_key.destroyed").exists()
    with pytest.raises(Refused, match="cannot be reactivated"):
        client_services.reactivate_client(actor=None, client=acme)
