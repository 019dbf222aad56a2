"""The staff pages' words: every stage, status, email and refusal has words for people,
and what the partner was told reads the outbox and Temporal together."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from models.commerce import EmailMessage
from models.lifecycle import (
    STAGE_WORDS,
    STATUS_WORDS,
    TRANSITIONS,
    Action,
    ProspectStatus,
    RefusalKind,
    Stage,
    refusal,
    status_words,
)
from models.status import EMAIL_WORDS, EmailKind, Notification, OnboardingStatus, email_words
from stores.notifications import told

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_every_stage_status_and_email_has_words() -> None:
    assert set(STAGE_WORDS) == set(Stage)
    recorded = {t.recorded_as for t in TRANSITIONS.values()}
    undecided = {("lead", "open"), ("opportunity", "open"), ("prospect", ProspectStatus.PENDING)}
    assert recorded | undecided <= set(STATUS_WORDS)
    assert set(EMAIL_WORDS) == set(EmailKind)
    assert status_words("lead", "disqualified") == "Cancelled"
    assert email_words("a_kind_of_later") == "A kind of later"


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("stage", list(Stage))
def test_every_refusal_is_in_words_and_says_what_is_allowed(action: Action, stage: Stage) -> None:
    # A stage that allows the action refuses it only while another decision is applied,
    # and says so by the refusal's kind (models.lifecycle.RefusalKind).
    being_applied = TRANSITIONS[action].allowed_in is stage
    words = refusal(
        action, stage, RefusalKind.BEING_APPLIED if being_applied else RefusalKind.STAGE
    )
    assert words.startswith(TRANSITIONS[action].button)
    # Never the lifecycle's identifiers (`opportunity_open`), nor the workflow's phrasing.
    assert "_" not in words and "not allowed" not in words and "(allowed:" not in words
    allowed = [t.button for t in TRANSITIONS.values() if t.allowed_in is stage]
    if being_applied:
        assert "another decision on this request is being applied" in words
    else:
        assert all(button in words for button in allowed)


def a_row(kind: EmailKind, **fields: Any) -> EmailMessage:
    values: dict[str, Any] = {
        "onboarding_id": "0123456789abcdef",
        "kind": kind.value,
        "recipient": "giulia@contoso.example",
        "subject": "Subject",
        "locale": "it",
        "message_id": f"<{kind.event}.0123456789abcdef@b2b.test>",
        "created_at": NOW,
        "attempts": 1,
        **fields,
    }
    return EmailMessage(**values)


def a_status(**notes: Notification | None) -> OnboardingStatus:
    return OnboardingStatus(
        onboarding_id="0123456789abcdef",
        workflow_id="onboarding-0123456789abcdef",
        stage=Stage.REJECTED,
        stage_since=NOW,
        submitted_at=NOW,
        company_name="Contoso Srl",
        email="giulia@contoso.example",
        locale="it",
        **notes,  # type: ignore[arg-type]
    )


def test_the_outbox_says_sent_and_refused_and_temporal_what_it_cannot() -> None:
    rows = [
        a_row(EmailKind.REQUEST_RECEIVED, sent_at=NOW),
        a_row(EmailKind.PROSPECT_REJECTED),
    ]
    refused = Notification(kind=EmailKind.PROSPECT_REJECTED, state="failed", error="550 no")
    shown = told(rows, a_status(notification=refused))
    assert [(t.kind, t.state, t.failure) for t in shown] == [
        ("request_received", "sent", None),
        ("prospect_rejected", "failed", "550 no"),
    ]
    assert shown[1].resendable and not shown[0].resendable
    assert shown[1].words == "Rejected, with the reason"

    # Once an admin has sent it again, the outbox's own state wins over the old refusal.
    again = [rows[0], a_row(EmailKind.PROSPECT_REJECTED, resent_at=NOW, resent_by="anna")]
    assert told(again, a_status(notification=refused))[1].state == "sending"
    recorded = [rows[0], a_row(EmailKind.PROSPECT_REJECTED, failed_at=NOW, failure="550 here")]
    assert told(recorded, None)[1].failure == "550 here"


def test_the_teams_reminders_are_not_what_the_partner_was_told() -> None:
    rows = [
        a_row(EmailKind.REQUEST_RECEIVED, sent_at=NOW),
        a_row(EmailKind.TEAM_REMINDER, period="1", locale="en", sent_at=NOW),
    ]
    assert [t.kind for t in told(rows, None)] == ["request_received"]


def test_an_email_refused_before_it_had_a_row_is_shown_from_temporal() -> None:
    refused = Notification(
        kind=EmailKind.PROSPECT_APPROVED, state="failed", error="cannot be written"
    )
    shown = told([a_row(EmailKind.REQUEST_RECEIVED, sent_at=NOW)], a_status(notification=refused))
    assert [(t.kind, t.state, t.message_id) for t in shown][1] == (
        "prospect_approved",
        "failed",
        None,
    )


def test_reminders_are_matched_in_the_order_they_were_sent() -> None:
    rows = [
        a_row(
            EmailKind.STATUS_LINK_REMINDER, period="2026-11-30T08", message_id="<a>", sent_at=NOW
        ),
        a_row(EmailKind.STATUS_LINK_REMINDER, period="2026-11-30T09", message_id="<b>"),
    ]
    reminders = [
        Notification(kind=EmailKind.STATUS_LINK_REMINDER, state="sent"),
        Notification(kind=EmailKind.STATUS_LINK_REMINDER, state="failed", error="later"),
    ]
    shown = told(rows, a_status(status_link_reminders=reminders))  # type: ignore[arg-type]
    assert [(t.period, t.state, t.failure) for t in shown] == [
        ("2026-11-30T08", "sent", None),
        ("2026-11-30T09", "failed", "later"),
    ]
