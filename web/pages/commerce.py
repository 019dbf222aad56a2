"""Commerce, for admins: all prospects, a prospect with its customers and hierarchy, an
organisation's credit limit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from client import DecisionNotAllowed, erase_personal_data
from models.commerce import Prospect
from models.lifecycle import Action, ProspectStatus, Stage, transitions_from
from models.partners import CreditLimitType, CreditLimitValues
from models.requests import REASON_MAX
from models.workflow_io import ErasePersonalData
from stores import Stores, credit_limits, views
from web.auth import CommerceAdmin, CsrfChecked
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
from web.templating import flash, money, render

router = APIRouter(prefix="/commerce", include_in_schema=False)

# What the credit limit form sends as text; `mandatory` is a checkbox.
TYPED = ("amount", "currency", "limit_type")
# Clearer than pydantic's words for these; its own say well what else is wrong.
MESSAGES = {
    "missing": "Please fill this in",
    "decimal_parsing": "Write the amount in digits, such as 25000.00, with a point before the"
    " decimals",
}
ProspectAction = Annotated[Action, allowed_in(Stage.AWAITING_APPROVAL)]


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
    request: Request,
    prospect_id: RowId,
    user: CommerceAdmin,
    stores: StoresDep,
    temporal: TemporalDep,
) -> Response:
    """A prospect: its request, Approve and Reject (integration off), its hold, its customers."""
    found = await _prospect(stores, prospect_id)
    customers = await read(views.customers_of_request, stores.commerce, found.onboarding_id)
    hierarchy = await read(views.hierarchy_of_request, stores.commerce, found.onboarding_id)
    return render(
        request,
        "commerce/prospect.html",
        prospect=found,
        customers=customers,
        hierarchy=hierarchy,
        reason_max=REASON_MAX,
        keeps_a_credit_limit=credit_limits.keeps_a_credit_limit,
        decisions=transitions_from(Stage.AWAITING_APPROVAL),
        status=await status_for_staff(temporal, stores, found.onboarding_id),
    )


@router.post("/prospects/{prospect_id}/hold", dependencies=[CsrfChecked])
async def hold_prospect(
    request: Request,
    prospect_id: RowId,
    user: CommerceAdmin,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[HoldForm, Form()],
) -> Response:
    """Put the prospect's request on hold: no reminders and no expiry until it is resumed."""
    found = await _prospect(stores, prospect_id)
    await hold_on_page(request, client, found.onboarding_id, user, form)
    return RedirectResponse(f"/commerce/prospects/{prospect_id}", status_code=303)


@router.post("/prospects/{prospect_id}/resume", dependencies=[CsrfChecked])
async def resume_prospect(
    request: Request,
    prospect_id: RowId,
    user: CommerceAdmin,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[HoldForm, Form()],
) -> Response:
    """Take the prospect's request off hold."""
    found = await _prospect(stores, prospect_id)
    await resume_on_page(request, client, found.onboarding_id, user, form)
    return RedirectResponse(f"/commerce/prospects/{prospect_id}", status_code=303)


# Before the decisions' route, whose `{action}` would take the word.
@router.post("/prospects/{prospect_id}/erase", dependencies=[CsrfChecked])
async def erase_prospect(
    request: Request,
    prospect_id: RowId,
    user: CommerceAdmin,
    stores: StoresDep,
    client: ClientDep,
    reason: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Erase a decided prospect's personal data, on the requester's word, with a reason."""
    found = await read(views.prospect, stores.commerce, prospect_id)
    if found is None:
        raise HTTPException(404, "There is no such prospect.")
    back = RedirectResponse(f"/commerce/prospects/{prospect_id}#personal-data", status_code=303)
    try:
        ErasePersonalData(actor=user.name, reason=reason)
    except ValidationError:
        flash(request, "Say why the personal data is erased (up to 500 characters).", "error")
        return back
    if not confirm:
        flash(request, "Tick the box to confirm: an erasure cannot be undone.", "error")
        return back
    try:
        await erase_personal_data(client, stores, found.onboarding_id, user.name, reason)
    except DecisionNotAllowed as err:
        flash(request, f"Not erased: {err}.", "error")
        return back
    flash(request, "The requester's personal data is erased.", "success")
    return back


@router.post("/prospects/{prospect_id}/{action}", dependencies=[CsrfChecked])
async def decide_prospect(
    request: Request,
    prospect_id: RowId,
    action: ProspectAction,
    user: CommerceAdmin,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[DecisionForm, Form()],
) -> Response:
    """Approve or reject a prospect made while the Sales integration was off."""
    found = await _prospect(stores, prospect_id)
    await decide_on_page(request, client, found.onboarding_id, action, user, form)
    return RedirectResponse(f"/commerce/prospects/{prospect_id}", status_code=303)


async def _prospect(stores: Stores, prospect_id: int) -> Prospect:
    found = await read(views.prospect, stores.commerce, prospect_id)
    if found is None:
        raise HTTPException(404, "There is no such prospect.")
    return found


@router.get("/customers/{customer_id}")
async def customer(
    request: Request, customer_id: RowId, user: CommerceAdmin, stores: StoresDep
) -> Response:
    """A customer, with the prospect it came from; an organisation's credit limit."""
    return await _customer_page(request, stores, customer_id)


@router.post("/customers/{customer_id}/credit-limit", dependencies=[CsrfChecked])
async def set_credit_limit(
    request: Request, customer_id: RowId, user: CommerceAdmin, stores: StoresDep
) -> Response:
    """Set the organisation's credit limit; a mistake is shown by its field, as it was typed."""
    await read(credit_limits.require_organization, stores.commerce, customer_id)
    form = await request.form()
    typed: dict[str, Any] = {name: str(form.get(name) or "") for name in TYPED}
    # A checkbox is sent only when ticked.
    typed["mandatory"] = "mandatory" in form
    try:
        values = CreditLimitValues.model_validate(
            {name: value for name, value in typed.items() if value != ""}
        )
    except ValidationError as err:
        return await _customer_page(
            request, stores, customer_id, 422, typed=typed, errors=_field_errors(err)
        )
    done = await run_in_threadpool(
        credit_limits.set_credit_limit,
        stores.commerce,
        customer_id,
        values,
        user.name,
        datetime.now(UTC),
    )
    if done.changed:
        mandatory = ", mandatory" if done.mandatory else ""
        said = f"{money(done.amount, done.currency)}, {done.limit_type.words}{mandatory}"
        flash(request, f"Credit limit set: {said}.", "success")
    else:
        flash(request, "Nothing to save: the credit limit already has these values.")
    return RedirectResponse(f"/commerce/customers/{customer_id}#credit-limit", status_code=303)


async def _customer_page(
    request: Request,
    stores: Stores,
    customer_id: int,
    status_code: int = 200,
    typed: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    found = await read(views.customer, stores.commerce, customer_id)
    if found is None:
        raise HTTPException(404, "There is no such customer.")
    origin = (
        await read(views.prospect_of_request, stores.commerce, found.onboarding_id)
        if found.onboarding_id
        else None
    )
    credit = None
    if credit_limits.keeps_a_credit_limit(found):
        credit = await read(credit_limits.credit_limit_state, stores.commerce, customer_id)
        if typed is None:
            typed = _form_of(credit.credit_limit)
    return render(
        request,
        "commerce/customer.html",
        status_code=status_code,
        customer=found,
        prospect=origin,
        credit=credit,
        typed=typed or {},
        errors=errors or {},
        limit_types=list(CreditLimitType),
        history_size=credit_limits.HISTORY_SIZE,
    )


def _form_of(current: CreditLimitValues | None) -> dict[str, Any]:
    """The form as the current limit fills it; empty but for the default type before one."""
    if current is None:
        return {"limit_type": CreditLimitValues.model_fields["limit_type"].default}
    return current.model_dump(mode="json", include={*TYPED, "mandatory"})


def _field_errors(err: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in err.errors():
        message = MESSAGES.get(error["type"], error["msg"].removeprefix("Value error, "))
        errors.setdefault(str(error["loc"][0]), message[:1].upper() + message[1:] + ".")
    return errors
