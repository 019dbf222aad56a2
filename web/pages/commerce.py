"""Commerce, for admins: all prospects, a prospect with its customers and hierarchy."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from models.payloads import Action, ProspectStatus
from stores import views
from web.auth import CommerceAdmin, CsrfChecked
from web.dependencies import ClientDep, StoresDep, read
from web.identifiers import RowId
from web.pages.decisions import DecisionForm, decide
from web.templating import render

router = APIRouter(prefix="/commerce", include_in_schema=False)


@router.get("")
async def commerce_home() -> Response:
    return RedirectResponse("/commerce/prospects", status_code=303)


@router.get("/prospects")
async def prospects(
    request: Request,
    user: CommerceAdmin,
    stores: StoresDep,
    status: ProspectStatus | Literal[""] = "",
    q: str = "",
) -> Response:
    """*All prospects*, filtered by status and searched by company, contact or reference."""
    rows = await read(views.all_prospects, stores.commerce, status or None, q[:200])
    return render(
        request,
        "commerce/prospects.html",
        prospects=rows,
        status=status,
        q=q,
        statuses=list(ProspectStatus),
        page_size=views.PAGE_SIZE,
    )


@router.get("/prospects/{prospect_id}")
async def prospect(
    request: Request, prospect_id: RowId, user: CommerceAdmin, stores: StoresDep
) -> Response:
    """A prospect: its request, Approve and Reject (integration off), its customers."""
    found = await read(views.prospect, stores.commerce, prospect_id)
    if found is None:
        raise HTTPException(404, "There is no such prospect.")
    customers = await read(views.customers_of_request, stores.commerce, found.onboarding_id)
    hierarchy = await read(views.hierarchy_of_request, stores.commerce, found.onboarding_id)
    return render(
        request,
        "commerce/prospect.html",
        prospect=found,
        customers=customers,
        hierarchy=hierarchy,
    )


@router.post("/prospects/{prospect_id}/{action}", dependencies=[CsrfChecked])
async def decide_prospect(
    request: Request,
    prospect_id: RowId,
    action: Literal["approve", "reject"],
    user: CommerceAdmin,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[DecisionForm, Form()],
) -> Response:
    """Approve or reject a prospect made while the Sales integration was off."""
    found = await read(views.prospect, stores.commerce, prospect_id)
    if found is None:
        raise HTTPException(404, "There is no such prospect.")
    await decide(request, client, found.onboarding_id, Action(action), user, form)
    return RedirectResponse(f"/commerce/prospects/{prospect_id}", status_code=303)


@router.get("/customers/{customer_id}")
async def customer(
    request: Request, customer_id: RowId, user: CommerceAdmin, stores: StoresDep
) -> Response:
    """A customer, with the prospect it came from."""
    found = await read(views.customer, stores.commerce, customer_id)
    if found is None:
        raise HTTPException(404, "There is no such customer.")
    origin = (
        await read(views.prospect_of_request, stores.commerce, found.onboarding_id)
        if found.onboarding_id
        else None
    )
    return render(request, "commerce/customer.html", customer=found, prospect=origin)
