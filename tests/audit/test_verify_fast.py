"""verify_audit's two-half walk (COPY stream + structure query) finds what the ordered walk finds, nothing more.

Each tamper kind is applied, then the trail is verified three ways: the default walk (events checked
in this process), the same with a worker process checking the COPY stream, and the ordered walk
(`exact=True`, the walk of every chain in seq order). All three must name the same problems.
"""

from __future__ import annotations

import secrets

import pytest
from django.db import router, transaction

from audit import fastcheck, verification
from audit.context import Origin, reset_origin, set_origin
from audit.models import AuditEvent
from audit.services import HASHED_COLUMNS, PLATFORM_CHAIN, event_hash, hashed_fields, record
from clients import services
from tests.audit.conftest import as_superuser, chain, rewrite_chain

FIELDS = (
    "occurred_at, client_id, client_code, actor_type, actor_id, actor_label, action, target_type, target_id,"
    " target_label, changes, ip, user_agent, request_id, chain, seq, prev_hash, hash, key_id, mac"
)
# Values whose JSON is not their text: quotes, backslashes, control characters, DEL, non-ASCII, an astral
# character, nested and empty structures, floats, a NULL client and ip.
AWKWARD = {
    "label": 'Société "Générale" \\ back\tslash\nnew line \x7f DEL 🚀',
    "changes": {
        "name": {"old": "Zoë", "new": 'a "quoted" \\ value'},
        "groups": {"old": [], "new": ["ops", {"nested": [1, 2.5, None, True]}]},
        "empty": {},
        "ratio": 0.1,
        "ünïcode key": "✓",
    },
}


def walks(**options) -> list[tuple[list[str], tuple]]:
    """(problem lines, summary) of the default walk inline, with a worker process, and of the ordered walk."""
    results = []
    for variant in ({"workers": 0}, {"workers": 1}, {"exact": True}):
        found: list[verification.Problem] = []
        summary = verification.verify_database(emit=found.append, **options, **variant)
        results.append(
            (
                sorted(problem.line() for problem in found),
                (summary.chains, summary.events, summary.legacy_unkeyed, summary.checkpoints),
            )
        )
    return results


def assert_same(**options) -> list[str]:
    inline, pooled, ordered = walks(**options)
    assert inline == ordered, (inline, ordered)
    assert pooled == ordered, (pooled, ordered)
    return inline[0]


@pytest.fixture
def awkward(acme):
    """Events of acme's chain and of the platform chain with every awkward value, written by record()."""
    token = set_origin(Origin(ip="2001:db8::1", user_agent=AWKWARD["label"], request_id="req-1"))
    try:
        with transaction.atomic(using=router.db_for_write(AuditEvent)):
            record(actor=None, action="client.updated", client=acme, target_label=AWKWARD["label"],
                   changes=AWKWARD["changes"])  # fmt: skip
            record(actor=None, action="staff.user_changed", target_label=AWKWARD["label"], changes=AWKWARD["changes"])
    finally:
        reset_origin(token)
    return acme


def copy_lines(events) -> bytes:
    with transaction.atomic(using=events.db):
        return b"".join(verification._copy_blocks(events))


def test_awkward_values_are_encoded_exactly_by_the_copy_check(awkward):
    """Not rescued by the re-check: fastcheck's own bytes reproduce every hash."""
    from audit import keys

    data = copy_lines(AuditEvent.objects.all())
    ring = {key.id.encode(): key.key for key in keys.chain_keys().keys}
    checked, problems, recheck = fastcheck.check_lines(data, ring, frozenset())
    assert checked == AuditEvent.objects.count() and problems == [] and recheck == []
    assert AuditEvent.objects.filter(chain=PLATFORM_CHAIN, target_label=AWKWARD["label"]).exists()
    assert assert_same() == []


def test_an_intact_trail_agrees_with_the_ordered_walk_whole_by_client_and_since(acme, make_client):
    globex = make_client("globex")
    services.update_client(actor=None, client=globex, legal_name="Globex Two")
    assert assert_same() == []
    assert assert_same(client_id=acme.pk) == []
    assert assert_same(since=chain(acme)[3].occurred_at) == []


def test_an_edited_event_is_named_once(awkward):
    target = chain(awkward)[-1]  # the awkward one: its re-check goes through hashed_fields
    as_superuser(("UPDATE audit_auditevent SET target_label = 'Société Anonyme' WHERE id = %s", [target.id]))
    edited = chain(awkward)[2]
    as_superuser(("UPDATE audit_auditevent SET actor_label = 'someone else' WHERE id = %s", [edited.id]))
    assert assert_same() == sorted(
        f"edited: event {event.id} (chain {awkward.pk}, seq {event.seq}): its fields no longer match its hash"
        for event in (target, edited)
    )


def test_a_gap_a_cut_end_a_swap_and_an_insertion_are_named_by_the_ordered_walk_of_their_chain(acme, make_client):
    globex, initech, umbrella = make_client("globex"), make_client("initech"), make_client("umbrella")
    hooli = make_client("hooli")
    for client in (globex, initech, umbrella, hooli):
        services.update_client(actor=None, client=client, legal_name=f"{client.code} Two")
        services.update_client(actor=None, client=client, legal_name=f"{client.code} Three")
    events = chain(acme)
    third, fourth = chain(globex)[1], chain(globex)[2]
    before = chain(umbrella)[0]
    values = {name: getattr(before, name) for name in (*HASHED_COLUMNS, "key_id", "seq")}
    values["action"] = "secret.revealed"
    as_superuser(
        ("DELETE FROM audit_auditevent WHERE id = %s", [events[2].id]),
        ("DELETE FROM audit_auditevent WHERE id = %s", [chain(initech)[-1].id]),
        ("UPDATE audit_auditevent SET seq = 1000 WHERE id = %s", [third.id]),
        ("UPDATE audit_auditevent SET seq = 2 WHERE id = %s", [fourth.id]),
        ("UPDATE audit_auditevent SET seq = 3 WHERE id = %s", [third.id]),
        ("UPDATE audit_auditevent SET seq = seq + 1000 WHERE client_id = %s AND seq > 1", [umbrella.pk]),
        ("UPDATE audit_auditevent SET seq = seq - 999 WHERE client_id = %s AND seq > 1000", [umbrella.pk]),
        (
            f"INSERT INTO audit_auditevent ({FIELDS}) SELECT occurred_at, client_id, client_code, actor_type,"
            " actor_id, actor_label, 'secret.revealed', target_type, target_id, target_label, changes, ip,"
            " user_agent, request_id, chain, 2, hash, %s, key_id, %s FROM audit_auditevent WHERE id = %s",
            [event_hash(before.hash, hashed_fields(values)), secrets.token_hex(32), before.id],
        ),
        ("UPDATE audit_chainhead SET seq = seq + 1 WHERE client_id = %s", [umbrella.pk]),
        # Renumbered with every link intact: only the seq tells.
        ("UPDATE audit_auditevent SET seq = seq + 10 WHERE client_id = %s AND seq > 1", [hooli.pk]),
        ("UPDATE audit_chainhead SET seq = seq + 10 WHERE client_id = %s", [hooli.pk]),
    )
    renumbered = chain(hooli)[1]
    inserted = AuditEvent.objects.get(client_id=umbrella.pk, action="secret.revealed")
    assert assert_same() == sorted(
        [
            f"deleted: event {events[3].id} (chain {acme.pk}, seq 4): seq 3 missing before it",
            f"deleted: chain {initech.pk}: the chain head names seq 3, its last event is seq 2",
            f"reordered: event {fourth.id} (chain {globex.pk}, seq 2): "
            f"its seq puts it before event {third.id}, its link after",
            f"inserted: event {inserted.id} (chain {umbrella.pk}, seq 2): the next event links past it",
            f"reordered: event {renumbered.id} (chain {hooli.pk}, seq 12): its seq is 12, its link puts it at 2",
        ]
    )


def test_forged_events_unknown_keys_and_legacy_events_after_keyed_ones(acme, make_client, settings):
    from audit import keys

    globex = make_client("globex")
    for name in ("Globex Two", "Globex Three"):
        services.update_client(actor=None, client=globex, legal_name=name)
    head = chain(acme)[-1]
    as_superuser(("UPDATE audit_auditevent SET mac = %s WHERE id = %s", [secrets.token_hex(32), head.id]))
    as_superuser(*rewrite_chain(globex, legacy_up_to=1))
    assert assert_same() == [
        f"forged: event {head.id} (chain {acme.pk}, seq {head.seq}): its mac does not verify: "
        "not written with the audit key"
    ]
    last = chain(globex)[-1]
    as_superuser(("UPDATE audit_auditevent SET key_id = '', mac = '' WHERE id = %s", [last.id]))
    assert assert_same(client_id=globex.pk) == [
        f"forged: event {last.id} (chain {globex.pk}, seq {last.seq}): no key id after keyed events "
        "(the database refuses those)"
    ]
    settings.FLOWS_AUDIT_KEYS = keys.generate_chain_key("ak-other")
    found = assert_same(client_id=acme.pk)
    assert len(found) == len(chain(acme)) and all("is not in FLOWS_AUDIT_KEYS" in line for line in found)


def test_checkpoints_of_a_rewritten_or_truncated_chain(acme, make_client, manage, tmp_path):
    from audit import keys

    globex = make_client("globex")
    services.update_client(actor=None, client=globex, legal_name="Globex Two")
    run = manage("audit_checkpoint", "--output-dir", str(tmp_path), "--json")
    assert run.code == 0, run.err
    for client in (acme, globex):  # the checkpoint lies inside the chain, not at its end
        services.update_client(actor=None, client=client, legal_name=f"{client.code} After")
    path = tmp_path / run.json["file"].rsplit("/", 1)[-1]

    def signed() -> dict:
        with path.open() as lines:
            return verification.read_checkpoints(lines, emit=lambda problem: None)

    assert assert_same(checkpoints=signed()) == []
    as_superuser(("UPDATE audit_auditevent SET actor_label = 'nobody' WHERE id = %s", [chain(acme)[0].id]))
    as_superuser(*rewrite_chain(acme, key=keys.chain_keys().primary.key))
    assert assert_same() == []  # consistent again: only the checkpoint tells
    checkpointed = AuditEvent.objects.get(client_id=acme.pk, seq=signed()[(str(acme.pk), str(acme.pk))][0].seq)
    found = assert_same(checkpoints=signed())
    assert any(line.startswith(f"rewritten: event {checkpointed.id} ") for line in found), found
    cut = chain(globex)[-2:]
    as_superuser(
        ("DELETE FROM audit_auditevent WHERE id = ANY(%s)", [[event.id for event in cut]]),
        ("UPDATE audit_chainhead SET seq = %s, hash = %s WHERE client_id = %s",
         [cut[0].seq - 1, cut[0].prev_hash, globex.pk]),
    )  # fmt: skip
    assert any(line.startswith(f"truncated: chain {globex.pk}:") for line in assert_same(checkpoints=signed()))
