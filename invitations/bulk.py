"""Bulk invitations as CSV: reading an uploaded file into batch rows, and writing the issued links back out.

Both doors (the admin's upload page and `manage.py create_invitations`) read files here and
issue through `services.issue_invitations`. The file is hostile until read: a size limit, UTF-8
only, no NUL bytes, a known header, at most `MAX_BATCH_ROWS` rows. The links file escapes cells
a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from config.errors import InvalidInput, excerpt
from invitations.services import MAX_BATCH_ROWS, BatchResult, InvitationRequest, Invitee, RowError

MAX_CSV_BYTES = 1024 * 1024  # 1 MiB: 2,000 rows of a few hundred bytes each, with room to spare
COLUMNS = ["name", "company_email", "private_email", "application", "permissions", "validity"]
REQUIRED_COLUMNS = {"name", "company_email", "application"}
MAX_CELL_CHARACTERS = 1000
VALIDITY = re.compile(r"^(\d{1,4})\s*([hd])$")
DEFAULT_VALIDITY = timedelta(days=7)
# What a spreadsheet reads as a formula when a cell starts with it (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def parse_validity(text: str) -> timedelta:
    """`12h` or `7d` (empty: 7 days). Anything else is a zero validity, which the service reports for its row."""
    text = (text or "").strip().lower()
    if not text:
        return DEFAULT_VALIDITY
    match = VALIDITY.match(text)
    if not match:
        return timedelta(0)
    return timedelta(hours=int(match[1])) if match[2] == "h" else timedelta(days=int(match[1]))


def _text(data: bytes) -> str:
    if len(data) > MAX_CSV_BYTES:
        raise InvalidInput(
            f"The file is {len(data):,} bytes; the limit is {MAX_CSV_BYTES:,} ({MAX_BATCH_ROWS:,} rows). Split it.",
            code="csv_too_large",
        )
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise InvalidInput(f"The file holds a NUL byte (line {line}): it is not a CSV text file.", code="csv_nul")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InvalidInput(
            f"The file is not UTF-8 text (line {line}, byte {error.start}); save it as 'CSV UTF-8'.",
            code="csv_not_utf8",
        ) from None


def read_csv(data: bytes) -> tuple[list[InvitationRequest], list[RowError]]:
    """The rows of an uploaded CSV file, and the lines that could not be read as rows.

    Header (any order, case-insensitive): name, company_email, application required;
    private_email, permissions (separated by spaces, ';' or ','), validity (12h … 30d, default
    7d) optional. Comma- or semicolon-separated. Blank lines are skipped.
    """
    text = _text(data)
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [cell.strip().lower().replace(" ", "_").replace("-", "_") for cell in next(reader, [])]
        unknown = [name for name in header if name not in COLUMNS]
        missing = sorted(REQUIRED_COLUMNS - set(header))
        if unknown or missing or len(set(header)) != len(header):
            problems = [f"unknown column(s) {', '.join(excerpt(name, 30) for name in unknown)}"] if unknown else []
            problems += [f"missing {', '.join(missing)}"] if missing else []
            problems += ["a column named twice"] if len(set(header)) != len(header) else []
            raise InvalidInput(
                f"Line 1 must name the columns {', '.join(COLUMNS)}: {'; '.join(problems)}.", code="csv_header"
            )
        requests, errors = [], []
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(requests) + len(errors) >= MAX_BATCH_ROWS:
                raise InvalidInput(
                    f"The file has more than {MAX_BATCH_ROWS:,} rows (the limit for one batch). Split it.",
                    code="batch_too_large",
                )
            if len(cells) != len(header):
                errors.append(RowError(line, "", f"{len(cells)} cells; the header names {len(header)}."))
                continue
            if any(len(cell) > MAX_CELL_CHARACTERS for cell in cells):
                errors.append(RowError(line, "", f"A cell is longer than {MAX_CELL_CHARACTERS} characters."))
                continue
            row = dict(zip(header, cells, strict=True))
            requests.append(
                InvitationRequest(
                    line=line,
                    invitee=Invitee(row["name"], row["company_email"], row.get("private_email", "")),
                    app_code=row["application"],
                    permissions=[p for p in re.split(r"[\s,;]+", row.get("permissions", "")) if p],
                    expires_in=parse_validity(row.get("validity", "")),
                )
            )
    except csv.Error as error:
        raise InvalidInput(f"Line {reader.line_num} is not valid CSV: {error}.", code="csv_malformed") from None
    if not requests and not errors:
        raise InvalidInput("The file has a header but no rows.", code="empty_batch")
    return requests, errors


def safe_cell(value) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ (or a tab, a CR) gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def links_csv(result: BatchResult, requests: list[InvitationRequest]) -> str:
    """The issued invitations as CSV — line, name, company e-mail, application, code, expiry, link — for the staff
    member to download once. Built in memory from the upload; never stored."""
    people = {request.line: request.invitee for request in requests}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line", "name", "company_email", "application", "code", "expires_at", "link"])
    for issued in result.issued:
        invitee = people[issued.line]
        writer.writerow(
            safe_cell(value)
            for value in (
                issued.line, invitee.full_name.strip(), invitee.company_email.strip().lower(),
                issued.invitation.application.app_code, issued.invitation.code,
                f"{issued.invitation.expires_at:%Y-%m-%d %H:%M} UTC", issued.link,
            )
        )  # fmt: skip
    return out.getvalue()


def errors_text(errors: list[RowError]) -> list[str]:
    return [f"line {e.line}: {e.field + ': ' if e.field else ''}{e.reason}" if e.line else e.reason for e in errors]
