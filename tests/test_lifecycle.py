"""The lifecycle's declarations: what may happen in each stage, by whom, and where."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from infra.links import staff_page_path
from models.lifecycle import (
    CHANGES,
    DECISION_NOT_ALLOWED,
    STAGES,
    Action,
    Change,
    EmailKind,
    RefusalKind,
    Refused,
    Role,
    Stage,
    change_allowed,
    decisions_in,
    first_stage,
    refusal,
    whose_move,
)
from models.status import RecordIds


def test_a_hold_and_a_resume_are_for_a_recorded_request_that_waits_on_staff() -> None:
    for change in (Change.HOLD, Change.RESUME):
        allowed = {stage for stage in Stage if change_allowed(change, stage)}
        assert allowed == {stage for stage in Stage if whose_move(stage) is not None}
        assert CHANGES[change].roles == set(Role)


def test_only_a_commerce_admin_erases_and_only_a_decided_request() -> None:
    assert {stage for stage in Stage if change_allowed(Change.ERASE, stage)} == {
        Stage.APPROVED,
        Stage.REJECTED,
    }
    assert CHANGES[Change.ERASE].roles == {Role.COMMERCE_ADMIN}


def test_a_recorded_request_waits_for_the_team_of_its_integration_mode() -> None:
    assert first_stage(True) is Stage.LEAD_OPEN
    assert first_stage(False) is Stage.AWAITING_APPROVAL
    assert whose_move(first_stage(True)) is Role.SALES_REP
    assert whose_move(first_stage(False)) is Role.COMMERCE_ADMIN


def test_each_ending_sends_its_email_and_no_other_stage_sends_one() -> None:
    endings = {stage: info.ending_email for stage, info in STAGES.items() if info.ending_email}
    assert endings == {
        Stage.APPROVED: EmailKind.PROSPECT_APPROVED,
        Stage.REJECTED: EmailKind.PROSPECT_REJECTED,
    }
    assert all(stage.decided for stage in endings)


@pytest.mark.parametrize(
    ("stage", "page"),
    [
        (Stage.SUBMITTED, "/commerce/prospects/1"),
        (Stage.LEAD_OPEN, "/sales/leads/2"),
        (Stage.OPPORTUNITY_OPEN, "/sales/opportunities/3"),
        (Stage.AWAITING_APPROVAL, "/commerce/prospects/1"),
        (Stage.APPROVED, "/commerce/prospects/1"),
    ],
)
def test_each_stage_has_its_staff_page(stage: Stage, page: str) -> None:
    records = RecordIds(prospect_id=1, lead_id=2, opportunity_id=3)
    assert staff_page_path(stage, records) == page


def test_a_stage_whose_record_is_not_written_yet_links_its_prospect() -> None:
    assert staff_page_path(Stage.LEAD_OPEN, RecordIds(prospect_id=7)) == "/commerce/prospects/7"


def test_a_page_shows_the_decisions_of_its_role_in_the_kept_stage() -> None:
    assert [t.action for t in decisions_in("lead_open", Role.SALES_REP)] == [
        Action.QUALIFY,
        Action.CANCEL,
    ]
    assert decisions_in("lead_open", Role.COMMERCE_ADMIN) == []
    assert decisions_in(None, Role.SALES_REP) == []
    assert decisions_in(Stage.APPROVED, Role.SALES_REP) == []


def test_a_refusal_is_read_by_its_details_never_by_its_words() -> None:
    answered = ApplicationError(
        "any words at all", "lead_open", "on_hold", type=DECISION_NOT_ALLOWED
    )
    refused = Refused.of(answered)
    assert (refused.stage, refused.kind) == (Stage.LEAD_OPEN, RefusalKind.ON_HOLD)
    assert refused.why == "it is already on hold"
    assert str(refused) == "any words at all"


def test_a_refusal_from_an_older_worker_names_its_stage() -> None:
    older = ApplicationError("hold is not allowed: it is decided", "approved")
    refused = Refused.of(older)
    assert (refused.stage, refused.kind) == (Stage.APPROVED, RefusalKind.STAGE)
    assert refused.why == "the request is approved already"


def test_a_decision_refused_while_another_is_applied_says_so() -> None:
    words = refusal(Action.QUALIFY, Stage.LEAD_OPEN, RefusalKind.BEING_APPLIED)
    assert "another decision on this request is being applied" in words
    words = refusal(Action.WON, Stage.LEAD_OPEN)
    assert words.startswith("Close as won is not possible: the request is an open lead.")
