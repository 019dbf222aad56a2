"""Sales, for reps: an overview, the lead views and the opportunities (search, filters,
counts, pages, decisions on many at once), a lead with its timeline, an opportunity with
its account and contact, what each request's partner was told; holding and resuming the
request either belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from models.dual_write import Entity, Side
from models.lifecycle import TRANSITIONS, Action, Role, Stage, decisions_in, transitions_from
from models.sales import Lead, Opportunity
from stores import Stores, queues, views
from stores.queues import LEADS, OPEN_LEADS, OPPORTUNITIES, Sort, View
from web.auth import CsrfChecked, SalesRep
from web.dependencies import ClientDep, StoresDep, TemporalDep, read
from web.identifiers import RowId
from web.pages import bulk
from web.pages.decisions import (
    DecisionForm,
    HoldForm,
    allowed_in,
    decide_on_page,
    hold_on_page,
    resume_on_page,
    status_for_staff,
)
from web.pages.dual_write import edit_form
from web.pages.notifications import notifications_of
from web.pages.queues import now, queue_page
from web.templating import render

router = APIRouter(prefix="/sales", include_in_schema=False)

# The lead views, by the address's `view`: every dual-write lead, or the ordinary open
# leads (entered by hand), which leave them out.
LEAD_VIEWS = {"commerce-b2b": LEADS, "open": OPEN_LEADS}
LeadAction = Annotated[Action, allowed_in(Stage.LEAD_OPEN)]
OpportunityAction = Annotated[Action, allowed_in(Stage.OPPORTUNITY_OPEN)]


@dataclass(frozen=True)
class Oldest:
    """The request that has waited longest in a stage: its page, its company, since when."""

    href: str
    company: str
    since: datetime


@router.get("")
async def overview(request: Request, user: SalesRep, stores: StoresDep) -> Response:
    """What waits for reps: open leads and opportunities, by how long, and the oldest."""
    at = now()
    waiting = View(filters={"status": "open"}, sort=Sort.OLDEST)
    leads = await read(queues.page, stores.sales, LEADS, waiting, at, 1)
    opportunities = await read(queues.page, stores.sales, OPPORTUNITIES, waiting, at, 1)
    oldest_lead = leads.rows[0] if leads.rows else None
    oldest_opportunity = opportunities.rows[0] if opportunities.rows else None
    return render(
        request,
        "sales/overview.html",
        queues=[
            (
                Stage.LEAD_OPEN,
                leads,
                "/sales/leads",
                ("open lead", "open leads"),
                oldest_lead
                and Oldest(
                    f"/sales/leads/{oldest_lead.id}",
                    oldest_lead.company_name,
                    oldest_lead.created_at,
                ),
            ),
            (
                Stage.OPPORTUNITY_OPEN,
                opportunities,
                "/sales/opportunities",
                ("open opportunity", "open opportunities"),
                oldest_opportunity
                and Oldest(
                    f"/sales/opportunities/{oldest_opportunity[0].id}",
                    oldest_opportunity[1].company_name,
                    oldest_opportunity[0].created_at,
                ),
            ),
        ],
        now=at,
    )


@router.get("/leads")
async def leads(
    request: Request,
    user: SalesRep,
    stores: StoresDep,
    view: Annotated[Literal["commerce-b2b", "open"], Query()] = "commerce-b2b",
) -> Response:
    """A lead view: search, filters with their counts, sorts, pages; decide on many."""
    queue = LEAD_VIEWS[view]
    fixed = [("view", view)] if view != "commerce-b2b" else []
    shown = await queue_page(request, stores.sales, queue, "/sales/leads", fixed)
    b2b_open = None
    if queue is OPEN_LEADS:
        # Why this ordinary view is empty for this product: its leads are all dual-write's.
        b2b_open = await read(
            queues.counts, stores.sales, LEADS, View(filters={"status": "open"}), now()
        )
    stages = await read(
        views.stages_of, stores.commerce, [lead.onboarding_id for lead in shown["page"].rows]
    )
    return render(
        request,
        "sales/leads.html",
        lead_view=view,
        lead_views=LEAD_VIEWS,
        decisions=transitions_from(Stage.LEAD_OPEN) if queue is LEADS else [],
        decidable=_decidable(stages, Stage.LEAD_OPEN),
        b2b_open=b2b_open,
        **shown,
    )


@router.post("/leads/bulk", dependencies=[CsrfChecked])
async def decide_leads(
    request: Request,
    user: SalesRep,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[bulk.BulkForm, Form()],
) -> Response:
    """Qualify or cancel every ticked lead, each its own decision; what happened to each."""
    back = form.back_to("/sales/leads")
    if form.action not in (t.action for t in transitions_from(Stage.LEAD_OPEN)):
        raise HTTPException(404, "There is no such decision on leads.")
    found = await read(views.of_ids, stores.sales, Lead, form.ids)
    targets = [_lead_target(found[row_id]) for row_id in form.ids if row_id in found]
    outcomes = await bulk.decide_all(request, client, user, form, targets)
    return bulk.answer(request, back, "lead", form, outcomes)


@router.get("/leads/{lead_id}")
async def lead(
    request: Request, lead_id: RowId, user: SalesRep, stores: StoresDep, temporal: TemporalDep
) -> Response:
    """A lead: its Contact and Company parts, its timeline, Qualify and Cancel, its hold,
    what its partner was told."""
    found = await read(views.lead, stores.sales, lead_id)
    if found is None:
        raise HTTPException(404, "There is no such lead.")
    notes = await read(views.timeline, stores.sales, lead_id)
    opportunity = await read(views.opportunity_of_lead, stores.sales, lead_id)
    status = await status_for_staff(temporal, stores, found.onboarding_id)
    stage = await _stage_of(stores, found.onboarding_id)
    return render(
        request,
        "sales/lead.html",
        lead=found,
        notes=notes,
        opportunity=opportunity,
        decisions=decisions_in(stage, Role.SALES_REP) if stage is Stage.LEAD_OPEN else [],
        status=status,
        told=await notifications_of(stores, found.onboarding_id, status),
    )


@router.post("/leads/{lead_id}/hold", dependencies=[CsrfChecked])
async def hold_lead(
    request: Request,
    lead_id: RowId,
    user: SalesRep,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[HoldForm, Form()],
) -> Response:
    """Put the lead's request on hold: no reminders and no expiry until it is resumed."""
    onboarding_id = await _lead_request(stores, lead_id)
    await hold_on_page(request, client, onboarding_id, user, form)
    return RedirectResponse(f"/sales/leads/{lead_id}", status_code=303)


@router.post("/leads/{lead_id}/resume", dependencies=[CsrfChecked])
async def resume_lead(
    request: Request,
    lead_id: RowId,
    user: SalesRep,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[HoldForm, Form()],
) -> Response:
    """Take the lead's request off hold."""
    onboarding_id = await _lead_request(stores, lead_id)
    await resume_on_page(request, client, onboarding_id, user, form)
    return RedirectResponse(f"/sales/leads/{lead_id}", status_code=303)


@router.post("/leads/{lead_id}/{action}", dependencies=[CsrfChecked])
async def decide_lead(
    request: Request,
    lead_id: RowId,
    action: LeadAction,
    user: SalesRep,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[DecisionForm, Form()],
) -> Response:
    """Qualify the lead (on to its opportunity) or cancel it (the prospect is rejected)."""
    onboarding_id = await _lead_request(stores, lead_id)
    current = await decide_on_page(request, client, onboarding_id, action, user, form)
    opportunity_id = current.records.opportunity_id if current else None
    if TRANSITIONS[action].leads_to is Stage.OPPORTUNITY_OPEN and opportunity_id is not None:
        return RedirectResponse(f"/sales/opportunities/{opportunity_id}", status_code=303)
    return RedirectResponse(f"/sales/leads/{lead_id}", status_code=303)


@router.get("/opportunities")
async def opportunities(request: Request, user: SalesRep, stores: StoresDep) -> Response:
    """The opportunities: search, filters with their counts, sorts, pages; close many."""
    shown = await queue_page(request, stores.sales, OPPORTUNITIES, "/sales/opportunities")
    stages = await read(
        views.stages_of, stores.commerce, [row[0].onboarding_id for row in shown["page"].rows]
    )
    return render(
        request,
        "sales/opportunities.html",
        decisions=transitions_from(Stage.OPPORTUNITY_OPEN),
        decidable=_decidable(stages, Stage.OPPORTUNITY_OPEN),
        **shown,
    )


@router.post("/opportunities/bulk", dependencies=[CsrfChecked])
async def close_opportunities(
    request: Request,
    user: SalesRep,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[bulk.BulkForm, Form()],
) -> Response:
    """Close every ticked opportunity as won or lost, each its own decision."""
    back = form.back_to("/sales/opportunities")
    if form.action not in (t.action for t in transitions_from(Stage.OPPORTUNITY_OPEN)):
        raise HTTPException(404, "There is no such decision on opportunities.")
    found = await read(views.of_ids, stores.sales, Opportunity, form.ids)
    leads = await read(
        views.of_ids, stores.sales, Lead, [o.lead_id for o in found.values() if o.lead_id]
    )
    targets = [
        _opportunity_target(found[row_id], leads.get(found[row_id].lead_id or 0))
        for row_id in form.ids
        if row_id in found
    ]
    outcomes = await bulk.decide_all(request, client, user, form, targets)
    return bulk.answer(request, back, "opportunity", form, outcomes)


@router.get("/opportunities/{opportunity_id}")
async def opportunity(
    request: Request,
    opportunity_id: RowId,
    user: SalesRep,
    stores: StoresDep,
    temporal: TemporalDep,
) -> Response:
    """An opportunity: its lead, account and contact, Close as won, Close as lost, its
    hold, what its partner was told."""
    found = await read(views.opportunity, stores.sales, opportunity_id)
    if found is None:
        raise HTTPException(404, "There is no such opportunity.")
    lead = await read(views.lead, stores.sales, found.lead_id) if found.lead_id else None
    account = (
        await read(views.account, stores.sales, found.account_id) if found.account_id else None
    )
    contact = (
        await read(views.contact, stores.sales, found.contact_id) if found.contact_id else None
    )
    status = await status_for_staff(temporal, stores, found.onboarding_id)
    stage = await _stage_of(stores, found.onboarding_id)
    return render(
        request,
        "sales/opportunity.html",
        opportunity=found,
        lead=lead,
        account=account,
        contact=contact,
        decisions=decisions_in(stage, Role.SALES_REP) if stage is Stage.OPPORTUNITY_OPEN else [],
        status=status,
        told=await notifications_of(stores, found.onboarding_id, status),
    )


@router.post("/opportunities/{opportunity_id}/hold", dependencies=[CsrfChecked])
async def hold_opportunity(
    request: Request,
    opportunity_id: RowId,
    user: SalesRep,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[HoldForm, Form()],
) -> Response:
    """Put the opportunity's request on hold: no reminders and no expiry until it is resumed."""
    onboarding_id = await _opportunity_request(stores, opportunity_id)
    await hold_on_page(request, client, onboarding_id, user, form)
    return RedirectResponse(f"/sales/opportunities/{opportunity_id}", status_code=303)


@router.post("/opportunities/{opportunity_id}/resume", dependencies=[CsrfChecked])
async def resume_opportunity(
    request: Request,
    opportunity_id: RowId,
    user: SalesRep,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[HoldForm, Form()],
) -> Response:
    """Take the opportunity's request off hold."""
    onboarding_id = await _opportunity_request(stores, opportunity_id)
    await resume_on_page(request, client, onboarding_id, user, form)
    return RedirectResponse(f"/sales/opportunities/{opportunity_id}", status_code=303)


@router.post("/opportunities/{opportunity_id}/{action}", dependencies=[CsrfChecked])
async def close_opportunity(
    request: Request,
    opportunity_id: RowId,
    action: OpportunityAction,
    user: SalesRep,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[DecisionForm, Form()],
) -> Response:
    """Close the opportunity as won (the prospect is approved) or lost (rejected)."""
    onboarding_id = await _opportunity_request(stores, opportunity_id)
    await decide_on_page(request, client, onboarding_id, action, user, form)
    return RedirectResponse(f"/sales/opportunities/{opportunity_id}", status_code=303)


async def _lead_request(stores: Stores, lead_id: int) -> str:
    found = await read(views.lead, stores.sales, lead_id)
    if found is None or found.onboarding_id is None:
        raise HTTPException(404, "There is no such lead from an onboarding request.")
    return found.onboarding_id


async def _opportunity_request(stores: Stores, opportunity_id: int) -> str:
    found = await read(views.opportunity, stores.sales, opportunity_id)
    if found is None or found.onboarding_id is None:
        raise HTTPException(404, "There is no such opportunity from an onboarding request.")
    return found.onboarding_id


@router.get("/accounts/{account_id}")
async def account(
    request: Request, account_id: RowId, user: SalesRep, stores: StoresDep
) -> Response:
    """An account: the organisation a qualified lead became, with its contacts' links."""
    found = await read(views.account, stores.sales, account_id)
    if found is None:
        raise HTTPException(404, "There is no such account.")
    lead = (
        await read(views.lead, stores.sales, found.originating_lead_id)
        if found.originating_lead_id
        else None
    )
    opportunity = (
        await read(views.opportunity_of_lead, stores.sales, lead.id) if lead and lead.id else None
    )
    contacts = await read(views.contacts_of_account, stores.sales, account_id)
    return render(
        request,
        "sales/account.html",
        account=found,
        lead=lead,
        opportunity=opportunity,
        contacts=contacts,
        sync=await edit_form(stores, Side.SALES, Entity.ORGANIZATION, account_id),
    )


@router.get("/contacts/{contact_id}")
async def contact(
    request: Request, contact_id: RowId, user: SalesRep, stores: StoresDep
) -> Response:
    """A contact: the requester as a person of the account, with the lead they came from."""
    found = await read(views.contact, stores.sales, contact_id)
    if found is None:
        raise HTTPException(404, "There is no such contact.")
    account = (
        await read(views.account, stores.sales, found.account_id) if found.account_id else None
    )
    lead = (
        await read(views.lead, stores.sales, found.originating_lead_id)
        if found.originating_lead_id
        else None
    )
    return render(
        request,
        "sales/contact.html",
        contact=found,
        account=account,
        lead=lead,
        sync=await edit_form(stores, Side.SALES, Entity.PERSON, contact_id),
    )


async def _stage_of(stores: Stores, onboarding_id: str | None) -> Stage | None:
    """The stage the request's prospect keeps; None for a lead no request made."""
    stages = await read(views.stages_of, stores.commerce, [onboarding_id])
    return stages.get(onboarding_id or "")


def _decidable(stages: dict[str, Stage], stage: Stage) -> set[str]:
    """The requests, of a page's rows, whose kept stage is the one its decisions are for."""
    return {onboarding_id for onboarding_id, kept in stages.items() if kept is stage}


def _lead_target(lead: Lead) -> bulk.Target:
    return bulk.Target(
        row_id=lead.id or 0,
        onboarding_id=lead.onboarding_id,
        name=lead.company_name,
        detail=f"{lead.first_name} {lead.last_name}",
        href=f"/sales/leads/{lead.id}",
    )


def _opportunity_target(opportunity: Opportunity, lead: Lead | None) -> bulk.Target:
    return bulk.Target(
        row_id=opportunity.id or 0,
        onboarding_id=opportunity.onboarding_id,
        name=lead.company_name if lead else opportunity.name,
        detail=f"{lead.first_name} {lead.last_name}" if lead else "",
        href=f"/sales/opportunities/{opportunity.id}",
    )
