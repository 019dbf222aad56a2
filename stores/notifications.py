"""What the partner was told: a request's emails to its requester, as its Sales and
Commerce pages show them.

The outbox (`email_message`) says what was written, when it was sent, and since this
version when a mail server refused it for good, and why. What it cannot say (an email
refused before it recorded refusals, or one refused before it had a row, its address
not one an email header can carry), the request's status in Temporal says: `told`
merges the two. The team's reminders go to staff, not the requester: they are left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from models.commerce import EmailMessage
from models.status import EmailKind, Notification, OnboardingStatus, email_words

State = Literal["sending", "sent", "failed"]


@dataclass(frozen=True)
class Told:
    """One notification: what it is, in which language, when, its Message-ID, its state."""

    kind: str
    period: str
    state: State
    locale: str | None = None
    recipient: str | None = None
    subject: str | None = None
    message_id: str | None = None
    created_at: datetime | None = None
    sent_at: datetime | None = None
    failed_at: datetime | None = None
    # The mail server's words, when it refused the email for good.
    failure: str | None = None
    attempts: int = 0
    resent_at: datetime | None = None
    resent_by: str | None = None

    @property
    def words(self) -> str:
        return email_words(self.kind)

    @property
    def resendable(self) -> bool:
        """An email to the requester, refused for good: an admin may have it sent again."""
        known = self.kind in EmailKind.__members__.values()
        return self.state == "failed" and known and EmailKind(self.kind).to_requester


def told(rows: list[EmailMessage], status: OnboardingStatus | None) -> list[Told]:
    """The request's notifications, oldest first: the outbox's rows, with what Temporal's
    status adds (the refusals the rows do not record)."""
    notes = _temporal_notes(status)
    shown: list[Told] = []
    # The n-th row of a kind is its n-th notification (reminders: one an hour).
    ranks: Counter[str] = Counter()
    for row in rows:
        if row.kind == EmailKind.TEAM_REMINDER:
            continue
        shown.append(_of_row(row, notes.pop((row.kind, ranks[row.kind]), None)))
        ranks[row.kind] += 1
    # Refused before the outbox had a row for them.
    shown.extend(
        Told(kind=note.kind.value, period="", state="failed", failure=note.error)
        for note in notes.values()
        if note.state == "failed"
    )
    return shown


def _of_row(row: EmailMessage, note: Notification | None) -> Told:
    state: State = "sending"
    failure = row.failure
    if row.sent_at is not None:
        state = "sent"
    elif row.failed_at is not None:
        state = "failed"
    elif note is not None and note.state == "failed" and row.resent_at is None:
        # Refused before the outbox recorded refusals: the request's status remembers.
        state, failure = "failed", note.error
    return Told(
        kind=row.kind,
        period=row.period,
        state=state,
        locale=row.locale,
        recipient=row.recipient,
        subject=row.subject or None,
        message_id=row.message_id,
        created_at=_utc(row.created_at),
        sent_at=_utc(row.sent_at),
        failed_at=_utc(row.failed_at),
        failure=failure if state == "failed" else None,
        attempts=row.attempts,
        resent_at=_utc(row.resent_at),
        resent_by=row.resent_by,
    )


def _temporal_notes(status: OnboardingStatus | None) -> dict[tuple[str, int], Notification]:
    """The status's notifications by kind and their rank among that kind's emails."""
    if status is None:
        return {}
    notes = [status.received_notification, *status.status_link_reminders, status.notification]
    keyed: dict[tuple[str, int], Notification] = {}
    for note in notes:
        if note is None:
            continue
        rank = sum(1 for kind, _ in keyed if kind == note.kind.value)
        keyed[note.kind.value, rank] = note
    return keyed


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; the stores write UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
