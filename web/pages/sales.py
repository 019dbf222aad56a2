"""Sales, for reps: the lead views, a lead with its timeline, an opportunity; holding and
resuming the request either belongs to."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from models.lifecycle import TRANSITIONS, Action, Stage, transitions_from
from stores import Stores, views
from web.auth import CsrfChecked, SalesRep
from web.dependencies import ClientDep, StoresDep, TemporalDep, read
from web.identifiers import RowId
from web.pages.decisions import (
    DecisionForm,
    HoldForm,
    allowed_in,
    decide_on_page,
    hold_on_page,
    resume_on_page,
    status_for_staff,
)
from web.templating import render

router = APIRouter(prefix="/sales", include_in_schema=False)

VIEWS = {
    "commerce-b2b": ("All Commerce B2B leads", views.all_commerce_b2b_leads),
    "open": ("Open leads", views.open_leads),
}
LeadAction = Annotated[Action, allowed_in(Stage.LEAD_OPEN)]
OpportunityAction = Annotated[Action, allowed_in(Stage.OPPORTUNITY_OPEN)]


@router.get("")
async def sales_home() -> Response:
    return RedirectResponse("/sales/leads", status_code=303)


@router.get("/leads")
async def leads(
    request: Request,
    user: SalesRep,
    stores: StoresDep,
    view: Literal["commerce-b2b", "open"] = "commerce-b2b",
) -> Response:
    """A lead view: every dual-write lead, or the ordinary open leads (which leave them out)."""
    title, query = VIEWS[view]
    rows = await read(query, stores.sales)
    return render(request, "sales/leads.html", view=view, views=VIEWS, title=title, leads=rows)


@router.get("/leads/{lead_id}")
async def lead(
    request: Request, lead_id: RowId, user: SalesRep, stores: StoresDep, temporal: TemporalDep
) -> Response:
    """A lead: its Contact and Company parts, its timeline, Qualify and Cancel, its hold."""
    found = await read(views.lead, stores.sales, lead_id)
    if found is None:
        raise HTTPException(404, "There is no such lead.")
    notes = await read(views.timeline, stores.sales, lead_id)
    opportunity = await read(views.opportunity_of_lead, stores.sales, lead_id)
    return render(
        request,
        "sales/lead.html",
        lead=found,
        notes=notes,
        opportunity=opportunity,
        decisions=transitions_from(Stage.LEAD_OPEN),
        status=await status_for_staff(temporal, stores, found.onboarding_id),
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


@router.get("/opportunities/{opportunity_id}")
async def opportunity(
    request: Request,
    opportunity_id: RowId,
    user: SalesRep,
    stores: StoresDep,
    temporal: TemporalDep,
) -> Response:
    """An opportunity: Close as won, Close as lost, its hold."""
    found = await read(views.opportunity, stores.sales, opportunity_id)
    if found is None:
        raise HTTPException(404, "There is no such opportunity.")
    lead = await read(views.lead, stores.sales, found.lead_id) if found.lead_id else None
    return render(
        request,
        "sales/opportunity.html",
        opportunity=found,
        lead=lead,
        decisions=transitions_from(Stage.OPPORTUNITY_OPEN),
        status=await status_for_staff(temporal, stores, found.onboarding_id),
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
