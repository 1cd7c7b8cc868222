"""export_audit: a streamed, audited export that verify_audit --file checks offline, line by line."""

from __future__ import annotations

import csv
import io
import json

from audit.models import AuditEvent
from tests.audit.conftest import problems


def test_an_export_verifies_offline_and_is_itself_audited(acme, manage, tmp_path):
    run = manage("export_audit", "--client", "acme", "--since", "2000-01-01")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    event = AuditEvent.objects.get(action="audit.exported")
    assert event.client_id == acme.pk and event.changes == {"since": "2000-01-01T00:00:00+00:00", "format": "jsonl"}
    assert len(lines) == 6 and json.loads(lines[-1])["id"] == event.id  # its own event is in it, last
    export = tmp_path / "acme.jsonl"
    export.write_text(run.out)
    checked = manage("verify_audit", "--file", str(export))
    assert checked.code == 0 and "Intact: 6 event(s) in 1 chain(s)." in checked.out


def test_an_export_changed_after_the_fact_is_caught(acme, manage, tmp_path):
    lines = manage("export_audit", "--client", "acme").out.splitlines()
    edited = json.loads(lines[2]) | {"actor_label": "someone else"}
    export = tmp_path / "acme.jsonl"
    export.write_text("\n".join([*lines[:2], json.dumps(edited), *lines[4:]]) + "\n")
    run = manage("verify_audit", "--file", str(export))
    assert run.code == 1
    deleted = json.loads(lines[4])
    assert problems(run) == [
        f"edited: event {edited['id']} (chain {acme.pk}, seq 3): its fields no longer match its hash",
        f"deleted: event {deleted['id']} (chain {acme.pk}, seq 5): seq 4 missing before it",
    ]


def test_a_csv_export_carries_the_same_fields(acme, manage):
    run = manage("export_audit", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(run.out)))
    assert run.code == 0 and len(rows) == AuditEvent.objects.count()
    assert {"seq", "prev_hash", "hash", "key_id", "mac"} <= rows[0].keys()
    assert manage("export_audit", "--json").code == 2  # stdout is the export


def test_the_copy_export_carries_the_values_the_python_rows_carried(acme, manage):
    """PostgreSQL writes the export's text: each line holds the values exported_rows() gives, awkward ones too."""
    from datetime import datetime

    from django.db import router, transaction

    from audit.context import Origin, reset_origin, set_origin
    from audit.selectors import EVENT_FIELDS, copied_export, export_queryset, exported_rows
    from audit.services import record

    token = set_origin(Origin(ip="2001:db8::1", user_agent='a\tb\n"c" \\ d ✓ 🚀', request_id="r"))
    try:
        with transaction.atomic(using=router.db_for_write(AuditEvent)):
            record(actor=None, action="client.updated", client=acme, target_label="Société \\ \x01\x02 \x7f",
                   changes={"name": {"old": "Zoë", "new": ['x"y', 1.5, None, {"z": True}]}})  # fmt: skip
    finally:
        reset_origin(token)
    events = export_queryset(client_id=acme.pk)
    expected = list(exported_rows(events))
    lines = b"".join(copied_export(events, "jsonl")).decode().splitlines()
    exported = [json.loads(line) for line in lines]
    assert [sorted(event) for event in exported] == [sorted(EVENT_FIELDS)] * len(expected)
    for got, want in zip(exported, expected, strict=True):
        assert datetime.fromisoformat(got.pop("occurred_at")) == datetime.fromisoformat(want.pop("occurred_at"))
        assert got == want
    rows = list(csv.DictReader(io.StringIO(b"".join(copied_export(events, "csv")).decode())))
    assert [row["id"] for row in rows] == [str(event["id"]) for event in expected]
    assert (
        json.loads(rows[-1]["changes"]) == expected[-1]["changes"] and rows[-1]["user_agent"] == 'a\tb\n"c" \\ d ✓ 🚀'
    )
    assert rows[-1]["occurred_at"].endswith("+00:00") and rows[-1]["ip"] == "2001:db8::1"


def test_an_awkward_export_verifies_offline(acme, manage, tmp_path):
    from django.db import router, transaction

    from audit.context import Origin, reset_origin, set_origin
    from audit.services import record

    token = set_origin(Origin(ip="192.0.2.1", user_agent="tab\there \\ ✓"))
    try:
        with transaction.atomic(using=router.db_for_write(AuditEvent)):
            record(actor=None, action="client.updated", client=acme, target_label='"quoted" 🚀',
                   changes={"nested": {"list": [1, 2.5, "ü"]}})  # fmt: skip
    finally:
        reset_origin(token)
    export = tmp_path / "all.jsonl"
    export.write_text(manage("export_audit").out)
    checked = manage("verify_audit", "--file", str(export))
    assert checked.code == 0, checked.out + checked.err
