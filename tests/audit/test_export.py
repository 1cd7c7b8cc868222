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
