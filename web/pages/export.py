"""All prospects as CSV: the view's rows, every page of them, written as they are read.

Whatever a requester typed goes into a spreadsheet an admin opens, so no cell may start
like a formula: a cell starting with `=`, `+`, `-` or `@` (or a tab or carriage return,
which some spreadsheets skip before reading one) is written with a `'` in front, which
spreadsheets show as text. So is one whose first visible character is one of those
behind invisible ones (a zero-width space, a byte-order mark, a direction override) or
spaces, or in another width (the fullwidth and small forms, U+FF1D, U+FE66 and the like),
which a spreadsheet or a later import may read as the plain one. The file starts with a
byte-order mark, so spreadsheets read it as UTF-8 (accents included).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from models.commerce import Prospect
from models.lifecycle import ReasonCode, status_words
from stores.queues import MODE_OPTIONS
from web.templating import language_words

# What a formula starts with, in Excel, LibreOffice and Google Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Skipped, with every invisible format character (Unicode's Cf), before the first visible one.
HIDDEN_BEFORE = " \t\r\n\u00a0\u3000"
BYTE_ORDER_MARK = "\ufeff"
MODES = dict(MODE_OPTIONS)
COLUMNS = (
    "Reference",
    "Submitted (UTC)",
    "Company",
    "Website",
    "Company address",
    "Company phone",
    "First name",
    "Last name",
    "Email",
    "Phone",
    "Job title",
    "Language",
    "Status",
    "Decided in",
    "Decided (UTC)",
    "Decided by",
    "Reason code",
    "Reason",
    "On hold since (UTC)",
    "Comments",
)


def cell(value: object) -> str:
    """A value as a cell that no spreadsheet reads as a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    text = str(value)
    return f"'{text}" if _starts_like_a_formula(text) else text


def _starts_like_a_formula(text: str) -> bool:
    if text.startswith(FORMULA_STARTS):
        return True
    visible = text.lstrip(HIDDEN_BEFORE)
    while visible and unicodedata.category(visible[0]) == "Cf":
        visible = visible[1:].lstrip(HIDDEN_BEFORE)
    return unicodedata.normalize("NFKC", visible[:1]).startswith(FORMULA_STARTS)


def row(prospect: Prospect) -> list[str]:
    reason_code = prospect.reason_code
    known = reason_code in ReasonCode.__members__.values()
    return [
        cell(value)
        for value in (
            prospect.onboarding_id,
            prospect.created_at,
            prospect.company_name,
            prospect.website,
            prospect.company_address,
            prospect.company_phone,
            prospect.first_name,
            prospect.last_name,
            prospect.email,
            prospect.phone,
            prospect.job_title,
            language_words(prospect.locale),
            status_words("prospect", prospect.status),
            MODES["sales" if prospect.sales_integration_enabled else "commerce"],
            prospect.decided_at,
            prospect.decided_by,
            ReasonCode(reason_code).label if known and reason_code else reason_code,
            prospect.decision_reason,
            prospect.held_since,
            prospect.comments,
        )
    ]


def prospects_csv(batches: Iterable[list[Prospect]]) -> Iterator[str]:
    """The CSV text, a batch of rows at a time (the header first)."""
    yield BYTE_ORDER_MARK + _lines([list(COLUMNS)])
    for batch in batches:
        if batch:
            yield _lines([row(prospect) for prospect in batch])


def _lines(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()
