"""One onboarding request, from the form to the approval or rejection email.

One workflow per request, `onboarding-<onboarding_id>`, started by the submission's
Update-with-Start (`submit`, answered once the request is in both stores). `run` reads
as DOMAIN.md's process: the request recorded (prospect, and lead when Sales works it),
then each decision applied until one decides it, then the email. Reps' decisions arrive
through the `decide` Update (validated, so a refused decision leaves no trace in
history) or the `decision` signal (a refused one is logged and ignored).

While a request is undecided its prospect holds the contact email (a unique column in
Commerce): a submission with that email records nothing, asks the open request to email
its status link, answers with that request and ends.

Emails to the requester (we received your request, the status link again when the
email applies again, the decision) go out beside the process, never holding it up;
the request ends only once each is sent or has failed for good.

Store writes are local activities, one per step (record, each decision): each write in
it is one short, idempotent transaction keyed by the onboarding id, so running it inside
the workflow task (and again, should that task be retried) is safe, and it spares the
server an activity task and a workflow task per write. The two stores never share a
transaction. An email's first attempt is a local activity too, in the same workflow
task as the step that asks for it: the mail server takes most emails at once. One it
does not take (it is down, slow, or says try later) goes on as a regular activity,
which waits out an outage for as long as it lasts, and whose heartbeat remembers that
the server took the message, so a retry does not resend (workflows/emails.py).

While undecided, a request keeps time on durable timers: the team whose move it is is
reminded, and the request expires (rejected by the system, reason code `expired`); a
hold stops both clocks. Once rejected, its personal data is left to
`PersonalDataWorkflow`, which anonymises it when the retention has passed; a decided
request still running is erased by the `erase` Update.

The mechanics live beside the process, each in a small class the workflow tells what
happens: the clocks (`workflows/clock.py`), the emails and their outbox records
(`workflows/emails.py`), what the Temporal UI shows (`workflows/visibility.py`); the
activity options every workflow shares are in `workflows/options.py`.

Pinned to the build that started it: a release changes this code with no patch, and an
earlier build's requests finish on that build's workers (docs/changing-the-workflow.md).
"""

from __future__ import annotations

from contextlib import suppress

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import (
    ApplicationError,
    FailureError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.commerce import CommerceActivities
    from activities.requests import RequestActivities
    from models.activity_io import (
        ApplyDecisionInput,
        CreateProspectInput,
        RecordHoldInput,
        RequestRecorded,
        TeamReminderInput,
    )
    from models.ids import hour_period, onboarding_workflow_id, personal_data_workflow_id
    from models.lifecycle import (
        ALLOWED_ACTIONS,
        STAGES,
        SYSTEM_ACTOR,
        TEAM_NAMES,
        TRANSITIONS,
        Change,
        ReasonCode,
        RefusalKind,
        Refused,
        Stage,
        change_allowed,
        first_stage,
        transitions_from,
        whose_move,
    )
    from models.markdown import escape
    from models.personal_data import AnonymisationKind, AnonymiseRequestInput
    from models.status import (
        Decision,
        DecisionAnswer,
        DecisionRecord,
        EmailKind,
        Hold,
        HoldAnswer,
        HoldState,
        Notification,
        OnboardingStatus,
        Resume,
    )
    from models.workflow_io import (
        ErasePersonalData,
        OnboardingInput,
        PersonalDataInput,
        StatusLinkRequested,
        SubmitResult,
    )
    from workflows.clock import RequestClock, Struck
    from workflows.emails import RequestEmails
    from workflows.options import store_write
    from workflows.visibility import RequestVisibility

# How often a duplicate submission tries again after finding that the request holding its
# email ended undecided (and freeing the email).
CLAIM_ATTEMPTS = 3


# Pinned: a request waits weeks for reps and admins, and finishes on the code that
# started it; a release changes this workflow as it likes, with no `workflow.patched`,
# and the old version's workers stay until its requests are done (deployment.py).
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class OnboardingWorkflow:
    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
        now = workflow.now()
        self._input = input
        self._status = OnboardingStatus(
            onboarding_id=input.onboarding_id,
            workflow_id=workflow.info().workflow_id,
            stage=Stage.SUBMITTED,
            stage_since=now,
            submitted_at=now,
            company_name=input.request.company,
            email=input.request.email,
            locale=input.request.locale,
        )
        self._decision: Decision | None = None
        self._emails = RequestEmails(
            input.onboarding_id, input.request, self._email_settled, self._publish
        )
        self._reminded_periods: set[str] = set()
        # The submission's answer, once the request is recorded (or found a duplicate).
        self._answer: SubmitResult | None = None
        # The team's reminders and the request's expiry.
        self._clock = RequestClock()
        # Erased on request, or kept for the retention once rejected.
        self._erased = False
        self._visibility = RequestVisibility(input.onboarding_id, input.request.company)

    @workflow.run
    async def run(self, input: OnboardingInput) -> OnboardingStatus:
        """The request recorded, then each decision applied until one decides it: a lead
        qualified into an opportunity, won or lost (without Sales, approved or rejected),
        cancelled, or expired; held and resumed on the way. Then its emails sent, and a
        rejected requester's personal data kept for the retention.

        Nothing else runs for an open request: the approval email's activation link
        expires by its date in the store, and the partner user's workflow starts with the
        first change that needs it (a resend, an invitation, a removal).
        """
        if await self._record_request():
            while not self._status.stage.decided:
                await self._apply(await self._next_decision())
        await workflow.wait_condition(
            lambda: self._emails.all_settled() and workflow.all_handlers_finished()
        )
        if self._retains_personal_data():
            await self._start_retention()
            # An erasure may have come meanwhile: answered before the workflow ends.
            await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status

    # --- the process ---------------------------------------------------------------------

    async def _record_request(self) -> bool:
        """Into both stores, holding the contact email; False if the email has an open request."""
        for _ in range(CLAIM_ATTEMPTS):
            recorded = await store_write(
                RequestActivities.record_request,
                CreateProspectInput(
                    onboarding_id=self._input.onboarding_id,
                    request=self._input.request,
                    at=workflow.now(),
                ),
                "Commerce and Sales: record the request (prospect, lead)",
            )
            if recorded.open_request is None:
                self._recorded(recorded)
                return True
            if await self._ask_for_status_link(recorded.open_request):
                self._answer = SubmitResult(
                    onboarding_id=recorded.open_request,
                    workflow_id=onboarding_workflow_id(recorded.open_request),
                    duplicate=True,
                )
                workflow.set_current_details(
                    "A duplicate: its email has an undecided request, which was asked to "
                    "email its status link. Nothing recorded."
                )
                return False
            # That request's workflow has ended undecided: it no longer holds the email.
            await store_write(
                CommerceActivities.release_email,
                recorded.open_request,
                "Commerce: free the email of a request that ended undecided",
            )
        raise ApplicationError(
            "the contact email stays held by requests that ended undecided",
            type="EmailHeld",
            non_retryable=True,
        )

    def _recorded(self, recorded: RequestRecorded) -> None:
        records = self._status.records
        records.prospect_id = recorded.prospect_id
        records.lead_id, records.timeline_note_id = recorded.lead_id, recorded.timeline_note_id
        self._status.sales_integration_enabled = recorded.sales_integration_enabled
        self._answer = SubmitResult(
            onboarding_id=self._input.onboarding_id, workflow_id=workflow.info().workflow_id
        )
        self._status.received_notification = self._emails.to_requester(EmailKind.REQUEST_RECEIVED)
        if recorded.timing is not None:
            self._clock.start(recorded.timing)
        self._enter(first_stage(bool(recorded.sales_integration_enabled)))

    async def _ask_for_status_link(self, onboarding_id: str) -> bool:
        """Ask the open request to email its link; False if its workflow has ended."""
        try:
            await workflow.get_external_workflow_handle(
                onboarding_workflow_id(onboarding_id)
            ).signal("status_link_requested", StatusLinkRequested(at=workflow.now()))
        except FailureError as err:
            workflow.logger.warning("Request %s not asked for its link: %s", onboarding_id, err)
            return False
        return True

    async def _apply(self, decision: Decision) -> None:
        """A decision's writes to both stores in one local activity, then the stage it
        leads to: the opportunity, or the approval or rejection and its email."""
        written = await store_write(
            RequestActivities.apply_decision,
            ApplyDecisionInput(
                onboarding_id=self._input.onboarding_id,
                request=self._input.request,
                at=workflow.now(),
                **decision.model_dump(),
            ),
            f"Commerce and Sales: {decision.action.value} ({escape(decision.actor)})",
        )
        self._status.records = self._status.records.model_copy(
            update=written.model_dump(exclude_none=True)
        )
        stage = TRANSITIONS[decision.action].leads_to
        if (ending_email := STAGES[stage].ending_email) is not None:
            await self._conclude(stage, ending_email, decision)
        else:
            self._enter(stage)

    async def _conclude(self, stage: Stage, kind: EmailKind, decision: Decision) -> None:
        """Both stores are decided: email the requester, then answer the rep.

        The email follows the decision rather than gating it: its first attempt runs in
        this workflow task, so the rep is answered once the mail server took it, and a
        server that is down delays the partner's email, not the rep (the email goes on
        as a regular activity); a refused address is recorded on the request instead of
        leaving it undecided.
        """
        self._status.notification = self._emails.to_requester(
            kind, reason=decision.reason, reason_code=decision.reason_code
        )
        self._enter(stage)

    @workflow.update
    async def submit(self) -> SubmitResult:
        """The submission that started this workflow: answered once the request is in
        both stores, or, for a duplicate, with the email's open request."""
        await workflow.wait_condition(lambda: self._answer is not None)
        assert self._answer is not None
        return self._answer

    # --- emails to the requester ---------------------------------------------------------

    @workflow.signal(
        name="status_link_requested",
        description="The contact email applied again: email the status link, once an hour",
    )
    def status_link_requested(self, input: StatusLinkRequested) -> None:
        """Whoever applied again, the link goes to the address on record, not to them."""
        period = hour_period(input.at)
        if period in self._reminded_periods:
            return
        self._reminded_periods.add(period)
        reminder = self._emails.to_requester(EmailKind.STATUS_LINK_REMINDER, period=period)
        self._status.status_link_reminders.append(reminder)

    async def _email_settled(self, note: Notification) -> None:
        """An email is sent, or failed for good."""
        if note is self._status.notification:
            # The decision's email is one of the request's records (CONTRACT).
            self._status.records.email_message_id = note.email_message_id
        self._publish()

    # --- decisions ---------------------------------------------------------------------

    # No description=: that form of the decorator loses the async return type for callers.
    @workflow.update
    async def decide(self, decision: Decision) -> DecisionAnswer:
        """A rep's or admin's decision; answers once it is applied, with where it stands."""
        self._accept(decision)
        await workflow.wait_condition(lambda: self._decision is None)
        return DecisionAnswer.model_validate(self._status, from_attributes=True)

    @decide.validator
    def _validate_decide(self, decision: Decision) -> None:
        refusal = self._refusal(decision)
        if refusal is not None:
            raise Refused(*refusal)

    @workflow.signal(
        name="decision", description="The same decision as a signal; a refused one is ignored"
    )
    def decision_signal(self, decision: Decision) -> None:
        """The same decision, fire-and-forget; a refused one is logged and ignored."""
        refusal = self._refusal(decision)
        if refusal is not None:
            workflow.logger.warning("Ignored %s signal: %s", decision.action.value, refusal[0])
            return
        self._accept(decision)

    @workflow.query(description="Where the request stands, with the ids of every row written")
    def status(self) -> OnboardingStatus:
        return self._status

    def _refusal(self, decision: Decision) -> tuple[str, Stage, RefusalKind] | None:
        """Why the decision is refused (words, stage, kind); None if it is allowed."""
        stage = self._status.stage
        if decision.reason_code is ReasonCode.EXPIRED:
            return (
                f"{decision.action.value} is not allowed with reason code expired: the system's",
                stage,
                RefusalKind.SYSTEM_REASON,
            )
        if self._decision is not None:
            return (
                f"{decision.action.value} is not allowed: {self._decision.action.value} "
                f"is already being applied while the request is {stage.value}",
                stage,
                RefusalKind.BEING_APPLIED,
            )
        if decision.action not in ALLOWED_ACTIONS[stage]:
            allowed = ", ".join(sorted(ALLOWED_ACTIONS[stage])) or (
                "none yet, it is being recorded"
                if stage is Stage.SUBMITTED
                else "none, it is decided"
            )
            return (
                f"{decision.action.value} is not allowed while the request is {stage.value} "
                f"(allowed: {allowed})",
                stage,
                RefusalKind.STAGE,
            )
        return None

    def _accept(self, decision: Decision) -> None:
        if TRANSITIONS[decision.action].takes_reason and decision.reason_code is None:
            decision = decision.model_copy(update={"reason_code": ReasonCode.OTHER})
        self._decision = decision
        self._status.pending_action = decision.action
        self._status.decisions.append(DecisionRecord(**decision.model_dump(), at=workflow.now()))
        self._publish()

    async def _next_decision(self) -> Decision:
        """The next decision: a rep's or admin's, or the system's once the request expires.
        Until it comes, the team is reminded on time."""
        while self._decision is None:
            struck = await self._clock.wait(
                decided=lambda: self._decision is not None,
                on_hold=lambda: self._status.held is not None,
                reminder_summary=self._reminder_summary,
            )
            if struck is Struck.REMINDER:
                self._remind()
                self._publish()
            elif struck is Struck.EXPIRY:
                self._expire()
        return self._decision

    def _reminder_summary(self) -> str:
        role = whose_move(self._status.stage)
        team = TEAM_NAMES[role] if role else "team"
        return f"Remind the {team} (reminder {len(self._status.reminders) + 1})"

    def _expire(self) -> None:
        """Rejected by the system: the stage's rejecting action, reason code `expired`."""
        rejecting = next(t.action for t in transitions_from(self._status.stage) if t.rejects)
        workflow.logger.info("Request %s expired at %s", self._input.onboarding_id, workflow.now())
        self._accept(Decision(action=rejecting, actor=SYSTEM_ACTOR, reason_code=ReasonCode.EXPIRED))

    def _remind(self) -> None:
        """Email the team whose move it is that the request waits on them."""
        status = self._status
        status.reminders.append(
            self._emails.to_team(
                TeamReminderInput(
                    onboarding_id=self._input.onboarding_id,
                    number=len(status.reminders) + 1,
                    stage=status.stage,
                    stage_since=status.stage_since,
                    company=self._input.request.company,
                    records=status.records,
                    expires_at=self._clock.expire_at,
                )
            )
        )

    # --- personal data ---------------------------------------------------------------------

    # Named `erase` by its method (client.ERASE_UPDATE); no name=: that form of the
    # decorator loses the async return type for callers.
    @workflow.update
    async def erase(self, erase: ErasePersonalData) -> None:
        """A Commerce admin erases the decided request's personal data: both stores are
        anonymised, emails still being sent stop, and the workflow ends (the client then
        destroys the request's data key)."""
        self._erased = True
        self._emails.stop()
        await store_write(
            RequestActivities.anonymise_request,
            AnonymiseRequestInput(
                onboarding_id=self._input.onboarding_id,
                at=workflow.now(),
                actor=erase.actor,
                reason=erase.reason,
                kind=AnonymisationKind.ERASURE,
            ),
            f"Commerce and Sales: erase the requester's personal data ({escape(erase.actor)})",
        )
        self._status.email = ""
        self._publish()

    @erase.validator
    def _validate_erase(self, erase: ErasePersonalData) -> None:
        stage = self._status.stage
        if not change_allowed(Change.ERASE, stage):
            raise Refused(
                f"erasure is not allowed while the request is {stage.value}: it is undecided",
                stage,
            )
        if self._erased:
            raise Refused("erasure is not allowed: it is erased already", stage, RefusalKind.ERASED)

    def _retains_personal_data(self) -> bool:
        """A rejected request, not erased: its data is kept a while."""
        return (
            not self._erased
            and self._status.stage is Stage.REJECTED
            and self._clock.timing is not None
            and self._clock.timing.personal_data_retention is not None
        )

    async def _start_retention(self) -> None:
        """Leave the retention to a workflow of its own, which outlives this one."""
        timing = self._clock.timing
        assert timing is not None and timing.personal_data_retention is not None
        decided_at = self._status.decisions[-1].at if self._status.decisions else workflow.now()
        with suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                "PersonalDataWorkflow",
                PersonalDataInput(
                    onboarding_id=self._input.onboarding_id,
                    anonymise_at=decided_at + timing.personal_data_retention,
                ),
                id=personal_data_workflow_id(self._input.onboarding_id),
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary="Personal data: anonymised once the retention ends",
            )

    # --- hold ------------------------------------------------------------------------------

    @workflow.update
    async def hold(self, hold: Hold) -> HoldAnswer:
        """Put the request on hold: no reminders, no expiry, until it is resumed."""
        self._status.held = HoldState(since=workflow.now(), by=hold.actor, note=hold.note)
        self._clock.hold()
        self._publish()
        await self._record_hold()
        return HoldAnswer.model_validate(self._status, from_attributes=True)

    @hold.validator
    def _validate_hold(self, hold: Hold) -> None:
        if self._status.held is not None:
            self._refuse_change(Change.HOLD, "it is already on hold", RefusalKind.ON_HOLD)
        self._refuse_change(Change.HOLD)

    @workflow.update
    async def resume(self, resume: Resume) -> HoldAnswer:
        """Take the request off hold: its clocks run again, moved on by the time held."""
        held = self._status.held
        assert held is not None
        self._clock.resume(workflow.now() - held.since)
        self._status.held = None
        self._publish()
        await self._record_hold()
        return HoldAnswer.model_validate(self._status, from_attributes=True)

    @resume.validator
    def _validate_resume(self, resume: Resume) -> None:
        if self._status.held is None:
            self._refuse_change(Change.RESUME, "it is not on hold", RefusalKind.NOT_ON_HOLD)
        self._refuse_change(Change.RESUME)

    def _refuse_change(
        self, change: Change, why: str = "", kind: RefusalKind | None = None
    ) -> None:
        """Refuse a hold or resume: where its stage does not allow it, while a decision is
        being applied, or (with `kind`) for the reason given."""
        stage = self._status.stage
        if not change_allowed(change, stage):
            why = "it is decided" if stage.decided else "it is still being recorded"
            kind = RefusalKind.STAGE
        elif self._decision is not None:
            why = f"{self._decision.action.value} is being applied"
            kind = RefusalKind.BEING_APPLIED
        if kind is not None:
            raise Refused(f"{change.value} is not allowed: {why}", stage, kind)

    async def _record_hold(self) -> None:
        await store_write(
            CommerceActivities.record_hold,
            RecordHoldInput(onboarding_id=self._input.onboarding_id, held=self._status.held),
            "Commerce: put the request on hold"
            if self._status.held
            else "Commerce: take the request off hold",
        )

    # --- stage, visibility ---------------------------------------------------------------

    def _enter(self, stage: Stage) -> None:
        """Move to `stage`; the decision that led here, if any, is now applied."""
        self._decision = None
        self._status.pending_action = None
        self._status.stage = stage
        self._status.stage_since = workflow.now()
        if stage.decided:
            self._status.held = None
        self._clock.enter(stage)
        self._publish(stage_changed=True)

    def _publish(self, stage_changed: bool = False) -> None:
        """What an admin reads in the Temporal UI: search attributes and current details."""
        if stage_changed:
            self._visibility.entered(self._status.stage)
        self._clock.show_on(self._status)
        self._visibility.show(self._status)
