"""A request's writes, one local activity per step of the process, across both stores.

Each step writes Commerce and Sales one after the other, each write its own transaction
and idempotent on the onboarding id (see `activities.commerce` and `activities.sales`):
the stores never share a transaction, and a retried step redoes nothing that is done.
Doing a step's writes in one activity rather than one each spares the workflow an
activation per write, which is most of what a request costs the worker.
"""

from __future__ import annotations

from temporalio import activity

from activities.commerce import CommerceActivities
from activities.errors import conflicting_state, missing_record
from activities.sales import SalesActivities
from models.activity_io import (
    ApplyDecisionInput,
    ApproveProspectInput,
    CloseOpportunityInput,
    CreateLeadInput,
    CreateProspectInput,
    DisqualifyLeadInput,
    OpenRequest,
    QualifyLeadInput,
    RejectProspectInput,
    RequestRecorded,
    RequestTiming,
    WriteCustomersInput,
)
from models.lifecycle import TRANSITIONS, Action, Stage
from models.personal_data import AnonymiseRequestInput, RequestAnonymised
from models.status import RecordIds
from settings import Settings
from stores import Stores
from stores.personal_data import NoSuchRequest, NotAnonymisable, anonymise_request


class RequestActivities:
    def __init__(
        self, commerce: CommerceActivities, sales: SalesActivities, timing: RequestTiming
    ) -> None:
        self.commerce = commerce
        self.sales = sales
        # The settings' clocks, handed to each request as it is recorded.
        self.timing = timing

    @activity.defn
    def record_request(self, input: CreateProspectInput) -> RequestRecorded:
        """The prospect in Commerce, holding the contact email, then (Sales on) its lead.

        When the email already has an undecided request, nothing is written and that
        request is named instead.
        """
        prospect = self.commerce.claim_prospect(input)
        if isinstance(prospect, OpenRequest):
            return RequestRecorded(open_request=prospect.onboarding_id)
        recorded = RequestRecorded(
            prospect_id=prospect.prospect_id,
            sales_integration_enabled=prospect.sales_integration_enabled,
            timing=self.timing,
        )
        if prospect.sales_integration_enabled:
            lead = self.sales.create_lead(
                CreateLeadInput(
                    onboarding_id=input.onboarding_id,
                    request=input.request,
                    prospect_id=prospect.prospect_id,
                    at=input.at,
                )
            )
            recorded.lead_id, recorded.timeline_note_id = lead.lead_id, lead.timeline_note_id
        return recorded

    @activity.defn
    def apply_decision(self, input: ApplyDecisionInput) -> RecordIds:
        """A rep's or admin's decision in both stores; answers with the rows it wrote."""
        oid, actor, reason, at = input.onboarding_id, input.actor, input.reason, input.at
        why = {"reason": reason, "reason_code": input.reason_code, "note": input.note}
        written = RecordIds()
        match input.action:
            case Action.QUALIFY:
                qualified = self.sales.qualify_lead(
                    QualifyLeadInput(onboarding_id=oid, actor=actor, at=at)
                )
                written.opportunity_id = qualified.opportunity_id
                written.contact_id, written.account_id = qualified.contact_id, qualified.account_id
                self._write_customers(input, written, TRANSITIONS[input.action].leads_to)
            case Action.CANCEL:
                self.sales.disqualify_lead(
                    DisqualifyLeadInput(onboarding_id=oid, actor=actor, at=at, **why)
                )
            case Action.WON | Action.LOST:
                self.sales.close_opportunity(
                    CloseOpportunityInput(
                        onboarding_id=oid,
                        won=input.action is Action.WON,
                        actor=actor,
                        at=at,
                        **why,
                    )
                )
            case Action.APPROVE:
                self._write_customers(input, written)
            case Action.REJECT:
                pass
            case _:
                raise conflicting_state(f"{input.action.value} is no decision this step knows")
        # A decision that decides the request decides its prospect too.
        leads_to = TRANSITIONS[input.action].leads_to
        if leads_to is Stage.APPROVED:
            written.customer_hierarchy_id = self.commerce.approve_prospect(
                ApproveProspectInput(onboarding_id=oid, actor=actor, at=at)
            )
        elif leads_to is Stage.REJECTED:
            self.commerce.reject_prospect(
                RejectProspectInput(onboarding_id=oid, actor=actor, at=at, **why)
            )
        return written

    @activity.defn
    def anonymise_request(self, input: AnonymiseRequestInput) -> RequestAnonymised:
        """A decided request's personal data anonymised in both stores, with who, when and
        why (`retention` of a rejected request, or `erasure` on request); idempotent.

        Its data key stays until the workflow has closed (a running workflow still needs
        it): the client's erasure, or the worker's sweep, destroys it then.
        """
        stores = Stores(sales=self.sales.engine, commerce=self.commerce.engine)
        try:
            return anonymise_request(stores, input)
        except NoSuchRequest as err:
            raise missing_record("The prospect", input.onboarding_id) from err
        except NotAnonymisable as err:
            raise conflicting_state(str(err)) from err

    def _write_customers(
        self, input: ApplyDecisionInput, written: RecordIds, stage: Stage | None = None
    ) -> None:
        customers = self.commerce.write_customers(
            WriteCustomersInput(
                onboarding_id=input.onboarding_id,
                request=input.request,
                sales_contact_id=written.contact_id,
                sales_account_id=written.account_id,
                at=input.at,
                stage=stage,
            )
        )
        written.person_customer_id = customers.person_customer_id
        written.organization_customer_id = customers.organization_customer_id


def request_timing(settings: Settings) -> RequestTiming:
    """The clocks a request recorded now gets, from the worker's settings."""
    return RequestTiming(
        remind_after=settings.remind_after,
        remind_every=settings.remind_every,
        expire_after=settings.expire_after,
        personal_data_retention=settings.personal_data_retention,
    )
