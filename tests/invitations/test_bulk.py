"""Bulk invitations: the CSV reader against hostile files, the batch service's rules, the command and the admin page."""

from __future__ import annotations

import base64
import csv
import io
import json
import re

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse

from audit.models import AuditEvent
from clients import services as client_services
from config.errors import InvalidInput
from invitations import bulk, services
from invitations.models import Invitation
from tests.invitations.conftest import ADA, text_found_in_database

committed = pytest.mark.usefixtures("committed")
db = pytest.mark.django_db(databases="__all__")
HEADER = "name,company_email,private_email,application,permissions,validity\n"


def people(count: int, *, start: int = 0, app: str = "onboarding") -> str:
    return "".join(f"Person {n},person{n}@acme.example,,{app},viewer,7d\n" for n in range(start, start + count))


def batch(world, text: str, **options):
    acme, _, _ = world
    requests, unreadable = bulk.read_csv(text.encode())
    return services.issue_invitations(actor=None, client=acme, requests=requests, unreadable=unreadable, **options)


# --- The reader ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"x" * (bulk.MAX_CSV_BYTES + 1), "the limit is 1,048,576"),
        (HEADER.encode() + b"Ada,ada@acme.example,,onboard\x00ing,,\n", "NUL byte (line 2)"),
        (HEADER.encode() + "Zoë,z@acme.example,,onboarding,,\n".encode("latin-1"), "not UTF-8 text (line 2"),
        (b"name,email,application\n", "unknown column(s) email; missing company_email"),
        (b"name,company_email,application,name\n", "a column named twice"),
        (HEADER.encode(), "a header but no rows"),
        (HEADER.encode() + people(bulk.MAX_BATCH_ROWS + 1).encode(), "more than 2,000 rows"),
        (HEADER.encode() + b'"Ada,ada@acme.example,,onboarding,,\n', "not valid CSV"),
    ],
)
def test_hostile_files_are_refused_with_a_reason(data, message):
    with pytest.raises(InvalidInput, match=re.escape(message)):
        bulk.read_csv(data)


def test_the_reader_takes_a_bom_semicolons_any_column_order_and_reports_unreadable_lines():
    text = "\ufeffApplication;Name;Company Email;Validity\nonboarding;Ada;ada@acme.example;36h\n\nx;y\n"
    requests, unreadable = bulk.read_csv(text.encode())
    [request] = requests
    assert (request.line, request.invitee.full_name, request.app_code) == (2, "Ada", "onboarding")
    assert request.expires_in.total_seconds() == 36 * 3600
    assert unreadable == [services.RowError(4, "", "2 cells; the header names 4.")]


def test_output_cells_that_a_spreadsheet_would_run_are_escaped():
    assert [bulk.safe_cell(value) for value in ("=HYPERLINK(1)", "+1", "-1", "@SUM(A1)", "\tx", "Ada", 3)] == [
        "'=HYPERLINK(1)", "'+1", "'-1", "'@SUM(A1)", "'\tx", "Ada", "3",
    ]  # fmt: skip


# --- The service ---------------------------------------------------------------------------------


@committed
def test_a_valid_file_is_issued_in_one_operation_and_each_link_works(world):
    text = HEADER + people(3) + "\"=cmd|' /C calc'!A0\",evil@acme.example,,onboarding,,\n"
    result = batch(world, text)
    assert result.errors == [] and len(result.issued) == 4 == Invitation.objects.count()
    for issued in result.issued:
        assert services.validate_invitation(token=issued.token) == issued.invitation
        assert issued.link.endswith(issued.token)
    [event] = AuditEvent.objects.filter(action="invitation.batch_issued")
    codes = sorted(Invitation.objects.values_list("code", flat=True))
    assert event.changes["count"] == 4 and sorted(event.changes["invitations"]) == codes
    assert not AuditEvent.objects.filter(action="invitation.issued").exists()
    rows = list(csv.reader(io.StringIO(bulk.links_csv(result, bulk.read_csv(text.encode())[0]))))
    assert rows[0] == ["line", "name", "company_email", "application", "code", "expires_at", "link"]
    assert rows[4][1].startswith("'=cmd") and rows[1][6] == result.issued[0].link
    assert text_found_in_database(["person0@acme.example", "Person 1", "evil@acme.example"]) == []


@committed
def test_any_invalid_row_stops_the_batch_unless_valid_only(world):
    text = HEADER + people(2) + "No Email,,,onboarding,,\nBad Perm,bp@acme.example,,onboarding,BAD PERM!,\n"
    text += "Long,long@acme.example,,onboarding,,90d\nNo App,na@acme.example,,payroll,,\n"
    result = batch(world, text)
    assert [(e.line, e.field) for e in result.errors] == [
        (4, "company_email"), (5, "permissions"), (6, "validity"), (7, "application"),
    ]  # fmt: skip
    assert result.issued == [] and result.valid_rows == 2 and not Invitation.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="invitation.").exists()

    result = batch(world, text, valid_only=True)
    assert len(result.issued) == 2 == Invitation.objects.count() and len(result.errors) == 4
    assert AuditEvent.objects.get(action="invitation.batch_issued").changes["invalid_rows_skipped"] == 4


@committed
def test_duplicates_in_the_file_and_against_pending_invitations_are_reported(world, issue):
    pending, _ = issue(ADA)
    text = (
        HEADER + people(2) + "Again,PERSON1@acme.example,,onboarding,,\n" + f"Ada,{ADA.company_email},,onboarding,,\n"
    )
    result = batch(world, text)
    assert [(e.line, e.field, e.reason) for e in result.errors] == [
        (4, "company_email", "Duplicate of line 3 (same e-mail and application)."),
        (5, "company_email", f"Already has a pending invitation to onboarding ({pending.code})."),
    ]
    assert Invitation.objects.count() == 1


@committed
def test_the_seats_are_checked_for_the_whole_batch(world, make_client):
    free = make_client("initech", tier="free")  # 100 seats
    client_services.configure_application(actor=None, client=free, app_code="onboarding")
    requests, _ = bulk.read_csv((HEADER + people(101)).encode())
    result = services.issue_invitations(actor=None, client=free, requests=requests, valid_only=True)
    assert result.batch_error.reason.startswith("Tier free allows 100 users; client initech holds 0 seat(s)")
    assert result.issued == [] and not Invitation.objects.exists()
    assert len(services.issue_invitations(actor=None, client=free, requests=requests[:100]).issued) == 100


@committed
def test_a_dry_run_checks_everything_and_writes_nothing(world):
    result = batch(world, HEADER + people(5), dry_run=True)
    assert result.errors == [] and result.valid_rows == 5 and result.issued == []
    assert not Invitation.objects.exists() and not AuditEvent.objects.filter(action__startswith="invitation.").exists()


@committed
def test_a_batch_mails_each_link_over_one_connection(world, smtp_server):
    result = batch(world, HEADER + people(3), send_to="company")
    assert result.delivery.status == "sent" and result.delivery.sent == 3
    assert sorted(recipients[0] for recipients, _ in smtp_server.messages) == [
        f"person{n}@acme.example" for n in range(3)
    ]
    assert all(issued.token in str(raw) for issued, (_, raw) in zip(result.issued, smtp_server.messages, strict=True))
    [event] = AuditEvent.objects.filter(action="invitation.sent")
    assert event.changes["count"] == 3 and "person0" not in json.dumps(event.changes)


@db
def test_a_batch_for_an_inactive_client_or_too_many_rows_is_refused(world):
    acme, _, _ = world
    with pytest.raises(InvalidInput, match="at most 2,000"):
        services.issue_invitations(actor=None, client=acme, requests=[None] * 2001)
    client_services.deactivate_client(actor=None, client=acme, reason="test")
    with pytest.raises(services.Refused, match="invitations need an active client"):
        batch(world, HEADER + people(1))


# --- The command ---------------------------------------------------------------------------------


def test_create_invitations_issues_a_file_and_writes_the_links_once(manage, world, tmp_path):
    source, output = tmp_path / "hires.csv", tmp_path / "links.csv"
    source.write_text(HEADER + people(3))
    run = manage("create_invitations", "--client", "acme", "--csv", str(source), "--output", str(output))
    assert run.code == 0 and "Issued 3 invitation(s) for acme." in run.out and "#token=" not in run.out
    assert output.stat().st_mode & 0o777 == 0o600 and output.read_text().count("#token=") == 3
    again = manage("create_invitations", "--client", "acme", "--csv", str(source), "--output", str(output), "--json")
    assert again.code == 1 and again.json["error"]["code"] == "invalid_rows"  # duplicates of pending ones now


def test_create_invitations_reports_every_bad_row_and_issues_nothing(manage, world, tmp_path):
    source = tmp_path / "hires.csv"
    source.write_text(HEADER + people(1) + "Bob,not-an-address,,onboarding,,\n")
    run = manage("create_invitations", "--client", "acme", "--csv", str(source))
    assert run.code == 1 and run.out.strip() == "line 3: company_email: Enter a valid e-mail address."
    assert run.err.strip().endswith("1 problem(s) in 2 row(s); nothing was issued (--valid-only issues the rest)")
    assert not Invitation.objects.exists()
    dry = manage("create_invitations", "--client", "acme", "--csv", str(source), "--dry-run", "--valid-only", "--json")
    assert (
        dry.code == 0 and dry.json["valid_rows"] == 1 and dry.json["issued"] == [] and not Invitation.objects.exists()
    )
    valid = manage("create_invitations", "--client", "acme", "--csv", str(source), "--valid-only", "--json")
    assert valid.code == 0 and len(valid.json["issued"]) == 1 and valid.json["errors"][0]["line"] == 3


def test_create_invitations_refuses_an_unreadable_file(manage, world, tmp_path):
    run = manage("create_invitations", "--client", "acme", "--csv", str(tmp_path / "missing.csv"))
    assert run.code == 1 and "Cannot read --csv: No such file or directory." in run.err


# --- The admin -----------------------------------------------------------------------------------


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("staff", "staff@thepia.net", "not-used")
    client.force_login(user)
    return user


def upload(text: str | bytes, **fields):
    data = text.encode() if isinstance(text, str) else text
    return {"file": SimpleUploadedFile("hires.csv", data, content_type="text/csv"), "send_to": "none", **fields}


@committed
def test_the_upload_page_is_reached_from_the_list_and_the_clients_page(client, staff, world):
    acme, _, _ = world
    url = reverse("admin:invitations_invitation_bulk", args=[acme.pk])
    choose = reverse("admin:invitations_invitation_bulk_choose")
    assert choose in client.get(reverse("admin:invitations_invitation_changelist")).content.decode()
    assert url in client.get(reverse("admin:clients_client_change", args=[acme.pk])).content.decode()
    assert client.get(choose, {"client": str(acme.pk)})["Location"] == url


@committed
def test_the_upload_page_lists_bad_rows_then_issues_the_valid_ones_as_a_download(client, staff, world):
    acme, _, _ = world
    url = reverse("admin:invitations_invitation_bulk", args=[acme.pk])
    text = HEADER + people(2) + "Bob,not-an-address,,onboarding,,\n"
    page = client.post(url, upload(text)).content.decode()
    assert "1 problem in 3 rows" in page and "nothing was issued" in page and "Enter a valid e-mail address." in page
    assert not Invitation.objects.exists()

    response = client.post(url, upload(text, valid_only="on"))
    page = response.content.decode()
    assert "2 invitations issued" in page and "no-store" in response["Cache-Control"]
    download = re.search(r'href="data:text/csv;charset=utf-8;base64,([^"]+)"', page).group(1)
    links = base64.b64decode(download).decode()
    assert links.count("#token=") == 2 and "person0@acme.example" in links
    assert "#token=" not in page.replace(download, "")  # the links are in the download only
    assert Invitation.objects.count() == 2


@committed
def test_a_hostile_upload_is_refused_on_the_page(client, staff, world):
    acme, _, _ = world
    url = reverse("admin:invitations_invitation_bulk", args=[acme.pk])
    page = client.post(url, upload(b"\xff\xfe" + HEADER.encode())).content.decode()
    assert "not UTF-8 text" in page and not Invitation.objects.exists()
    page = client.post(url, upload(b"x" * (bulk.MAX_CSV_BYTES + 1))).content.decode()
    assert "the limit is 1,048,576" in page


@committed
def test_a_client_the_staff_member_may_not_see_has_no_upload_page(client, world):
    acme, _, _ = world
    user = User.objects.create_user("support", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:invitations_invitation_bulk", args=[acme.pk])).status_code in (403, 404)


# --- What issuing costs --------------------------------------------------------------------------


@committed
def test_the_context_read_with_the_lock_agrees_with_the_seat_rule_the_keys_and_the_active_key(world, issue):
    from invitations.selectors import issue_checks, issue_context, seats_used
    from vault.selectors import active_signing_key, client_keys

    acme, _, apps = world
    multi, _ = issue(ADA, max_uses=3)
    _, token = issue(services.Invitee("Grace Hopper", "grace.hopper@acme.example"))
    services.redeem_invitation(actor=None, token=token)
    services.revoke_invitation(actor=None, invitation=issue(services.Invitee("Rev", "rev@acme.example"))[0], reason="x")
    with transaction.atomic(using="console"):
        context = issue_context(acme.pk, using="console")
    # The trigger-kept counter, not a sum: it agrees with the sum over the rows.
    assert context.seats_used == seats_used(acme) == 4
    assert (context.client.pk, context.client.code, context.client.status) == (acme.pk, "acme", "active")
    assert (context.client.tier.code, context.client.tier.max_users) == (acme.tier.code, acme.tier.max_users)
    assert context.client.tier.features == acme.tier.features
    assert context.client.created_at == acme.created_at
    expected = client_keys(acme)
    assert context.keys.active_version == expected.active_version
    assert context.keys.live_versions == expected.live_versions
    assert context.keys._wrapped == expected._wrapped  # the wrapped keys themselves, as bytes
    assert context.signing_key.kid == active_signing_key().kid
    checks = issue_checks(acme, applications=[apps["acme"]], email_hashes=[multi.email_hash], codes=[multi.code])
    assert checks.pending == {(str(apps["acme"].pk), multi.email_hash): multi.code}
    assert checks.codes_taken == {multi.code}


@committed
def test_a_client_without_invitations_has_no_seats_an_unknown_one_is_not_found_and_a_lock_needs_a_transaction(
    world,
):
    import uuid

    from config.errors import NotFound
    from invitations.selectors import issue_context

    acme, _, _ = world
    with pytest.raises(RuntimeError, match="inside the issuing transaction"):
        issue_context(acme.pk, using="console")  # a lock released at once would guard nothing
    with transaction.atomic(using="console"):
        assert issue_context(acme.pk, using="console").seats_used == 0
        with pytest.raises(NotFound):
            issue_context(uuid.uuid4(), using="console")


@committed
def test_only_the_console_role_may_call_the_issue_context(world, app_connection):
    import psycopg

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_connection.execute("SELECT * FROM invitation_issue_context(%s)", [world[0].pk])


@committed
def test_a_duplicate_under_an_older_data_key_version_is_still_refused(world, issue):
    from config.errors import Conflict
    from vault import services as vault_services

    acme, _, _ = world
    issue(ADA)
    vault_services.create_data_key(actor=None, client=acme)  # a rotation: the first hash is now an old version's
    with pytest.raises(Conflict, match="already has a pending invitation"):
        issue(services.Invitee("Ada L.", ADA.company_email))
    assert Invitation.objects.count() == 1
    assert AuditEvent.objects.filter(action="invitation.issued").count() == 1


@committed
def test_a_taken_support_code_is_replaced_and_the_invitation_issued(world, issue, monkeypatch):
    first, _ = issue(ADA)
    codes = iter([first.code, "INV-ZZZZZZ"])
    monkeypatch.setattr(services, "_random_code", lambda: next(codes))
    second, token = issue(services.Invitee("Grace Hopper", "grace.hopper@acme.example"))
    assert second.code == "INV-ZZZZZZ" == Invitation.objects.get(pk=second.pk).code
    assert Invitation.objects.count() == 2
    assert services.validate_invitation(token=token).pk == second.pk
    event = AuditEvent.objects.filter(action="invitation.issued").order_by("-seq").first()
    assert event.target_id == str(second.pk)


@committed
def test_a_batch_costs_the_same_statements_whatever_its_size(world):
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    counts = []
    for start, size in ((0, 3), (100, 60)):
        with CaptureQueriesContext(connections["console"]) as queries:
            assert len(batch(world, HEADER + people(size, start=start)).issued) == size
        counts.append(len(queries.captured_queries))
    # Lock with seats, keys and signing key; applications; checks; one insert; one audit event (9 before).
    assert counts[0] == counts[1] == 8


@committed
def test_a_single_issue_takes_four_statements_and_its_transaction(world, issue):
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    issue(ADA)  # the client's first data key and chain head exist from here on
    with CaptureQueriesContext(connections["console"]) as queries:
        issue(services.Invitee("Grace Hopper", "grace.hopper@acme.example"))
    statements = [query["sql"].split()[0] for query in queries.captured_queries]
    # The lock with seats, keys and signing key; the insert with its duplicate check; chain head, audit insert
    # (13 statements at first, then 8).
    assert statements == ["BEGIN", "SELECT", "WITH", "SELECT", "INSERT", "COMMIT"]
    assert "invitation_issue_context" in queries.captured_queries[1]["sql"]
