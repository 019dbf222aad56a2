"""Commerce, for admins: an overview, All prospects (search, filters, counts, pages,
decisions on many at once, its view as CSV), a prospect with its customers, hierarchy,
hold and what its partner was told, an organisation's credit limit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from client.personal_data import erase_personal_data
from models.commerce import Customer, Prospect
from models.dual_write import Side
from models.lifecycle import (
    Action,
    Change,
    RefusalKind,
    Refused,
    Role,
    Stage,
    change_allowed,
    decisions_in,
    transitions_from,
)
from models.partners import (
    CreditLimitType,
    CreditLimitValues,
    NewCreditLimit,
    PartnerRole,
    PartnerUserState,
)
from models.requests import REASON_MAX
from models.workflow_io import ErasePersonalData
from stores import Stores, accounts, credit_limits, dual_write, queues, views
from stores.queues import PROSPECTS, Sort, View
from web.auth import CommerceAdmin, CsrfChecked
from web.dependencies import ClientDep, SettingsDep, StoresDep, TemporalDep, read
from web.identifiers import RowId
from web.pages import bulk, export, notifications
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
from web.pages.queues import now, queue_page, view_of
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
async def overview(request: Request, user: CommerceAdmin, stores: StoresDep) -> Response:
    """Every request by stage, those awaiting approval by how long, emails not sent."""
    at = now()
    stages = await read(views.stage_counts, stores)
    awaiting = View(filters={"status": "pending", "mode": "commerce"}, sort=Sort.OLDEST)
    approval = await read(queues.page, stores.commerce, PROSPECTS, awaiting, at, 1)
    with_sales = View(filters={"status": "pending", "mode": "sales"}, sort=Sort.OLDEST)
    in_sales = await read(queues.page, stores.commerce, PROSPECTS, with_sales, at, 1)
    failed = await read(views.failed_notifications, stores.commerce)
    return render(
        request,
        "commerce/overview.html",
        stages=stages,
        approval=approval,
        in_sales=in_sales,
        failed=failed,
        failed_shown=views.FAILED_SHOWN,
        now=at,
    )


@router.get("/prospects")
async def prospects(request: Request, user: CommerceAdmin, stores: StoresDep) -> Response:
    """*All prospects*: search, filters with their counts, sorts, pages; decide on many."""
    shown = await queue_page(request, stores.commerce, PROSPECTS, "/commerce/prospects")
    return render(
        request,
        "commerce/prospects.html",
        decisions=transitions_from(Stage.AWAITING_APPROVAL),
        # The rows whose kept stage allows an admin's decision: ticked, "awaiting you".
        decidable={
            row.onboarding_id
            for row in shown["page"].rows
            if decisions_in(row.stage, Role.COMMERCE_ADMIN)
        },
        **shown,
    )


@router.get("/prospects.csv")
async def prospects_csv(request: Request, user: CommerceAdmin, stores: StoresDep) -> Response:
    """All prospects of the view (its search, filters and sort, every page) as CSV, streamed."""
    view = view_of(request, PROSPECTS)
    at = now()
    batches = queues.export(stores.commerce, PROSPECTS, view, at)
    return StreamingResponse(
        export.prospects_csv(batches),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="all-prospects-{at:%Y-%m-%d}.csv"'},
    )


@router.post("/prospects/bulk", dependencies=[CsrfChecked])
async def decide_prospects(
    request: Request,
    user: CommerceAdmin,
    stores: StoresDep,
    client: ClientDep,
    form: Annotated[bulk.BulkForm, Form()],
) -> Response:
    """Approve or reject every ticked prospect awaiting approval, each its own decision."""
    back = form.back_to("/commerce/prospects")
    if form.action not in (t.action for t in transitions_from(Stage.AWAITING_APPROVAL)):
        raise HTTPException(404, "There is no such decision on prospects.")
    found = await read(views.of_ids, stores.commerce, Prospect, form.ids)
    targets = [_prospect_target(found[row_id]) for row_id in form.ids if row_id in found]
    outcomes = await bulk.decide_all(request, client, user, form, targets)
    return bulk.answer(request, back, "prospect", form, outcomes)


@router.get("/prospects/{prospect_id}")
async def prospect(
    request: Request,
    prospect_id: RowId,
    user: CommerceAdmin,
    stores: StoresDep,
    temporal: TemporalDep,
) -> Response:
    """A prospect: its request, Approve and Reject (integration off), its hold, its
    customers, what its partner was told."""
    found = await _prospect(stores, prospect_id)
    customers = await read(views.customers_of_request, stores.commerce, found.onboarding_id)
    hierarchy = await read(views.hierarchy_of_request, stores.commerce, found.onboarding_id)
    status = await status_for_staff(temporal, stores, found.onboarding_id)
    return render(
        request,
        "commerce/prospect.html",
        prospect=found,
        customers=customers,
        hierarchy=hierarchy,
        reason_max=REASON_MAX,
        keeps_a_credit_limit=credit_limits.keeps_a_credit_limit,
        stage=Stage(found.stage),
        decisions=decisions_in(found.stage, Role.COMMERCE_ADMIN),
        status=status,
        told=await notifications_of(stores, found.onboarding_id, status),
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
    except Refused as err:
        if err.kind is RefusalKind.STAGE and not change_allowed(Change.ERASE, err.stage):
            flash(
                request,
                f"Not erased: {err.why}, and only a decided request's personal data can be erased.",
                "error",
            )
        else:
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


@router.post("/prospects/{prospect_id}/notifications/resend", dependencies=[CsrfChecked])
async def resend_notification(
    request: Request,
    prospect_id: RowId,
    user: CommerceAdmin,
    stores: StoresDep,
    temporal: TemporalDep,
    client: ClientDep,
    settings: SettingsDep,
    form: Annotated[notifications.ResendForm, Form()],
) -> Response:
    """Send a refused email again: a new attempt at the same notification, still sent once."""
    found = await _prospect(stores, prospect_id)
    await notifications.resend(request, found, form, user, temporal, stores, client, settings)
    return RedirectResponse(f"/commerce/prospects/{prospect_id}#notifications", status_code=303)


def _prospect_target(prospect: Prospect) -> bulk.Target:
    return bulk.Target(
        row_id=prospect.id or 0,
        onboarding_id=prospect.onboarding_id,
        name=prospect.company_name,
        detail=f"{prospect.first_name} {prospect.last_name}",
        href=f"/commerce/prospects/{prospect.id}",
    )


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
        values = NewCreditLimit.model_validate(
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


@router.post("/customers/{customer_id}/users/{user_id}/administrator", dependencies=[CsrfChecked])
async def appoint_administrator(
    request: Request, customer_id: RowId, user_id: RowId, user: CommerceAdmin, stores: StoresDep
) -> Response:
    """Make one of the organisation's users its administrator: how a partner left without
    one (its only administrator erased) gets one again."""
    try:
        appointed = await run_in_threadpool(
            accounts.set_role,
            stores.commerce,
            customer_id,
            user_id,
            PartnerRole.ADMIN,
            user.name,
        )
    except accounts.RoleRefused as refused:
        flash(request, f"Not changed: {refused}.", "error")
    else:
        flash(request, f"{appointed.name} is now an administrator of the organisation.", "success")
    return RedirectResponse(f"/commerce/customers/{customer_id}#users", status_code=303)


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
    invoice = None
    if found.invoice_customer_id and found.invoice_customer_id != found.id:
        invoice = await read(views.customer, stores.commerce, found.invoice_customer_id)
    credit, users = None, []
    if credit_limits.keeps_a_credit_limit(found):
        credit = await read(credit_limits.credit_limit_state, stores.commerce, customer_id)
        if typed is None:
            typed = _form_of(credit.credit_limit)
        users = await read(accounts.organization_users, stores.commerce, customer_id)
    return render(
        request,
        "commerce/customer.html",
        status_code=status_code,
        customer=found,
        sync=await edit_form(stores, Side.COMMERCE, dual_write.customer_entity(found), customer_id),
        prospect=origin,
        sales_record=await _sales_record(stores, found),
        invoice=invoice,
        credit=credit,
        typed=typed or {},
        errors=errors or {},
        limit_types=list(CreditLimitType),
        history_size=credit_limits.HISTORY_SIZE,
        users=users,
        # An invited administrator counts: they are one once they activate.
        without_administrator=bool(users)
        and not any(
            user.role is PartnerRole.ADMIN and user.state is not PartnerUserState.REMOVED
            for user in users
        ),
    )


async def _sales_record(stores: Stores, customer: Customer) -> str | None:
    """The Sales record dual-write made this customer from, by name (Sales' own pages are
    for reps)."""
    if customer.sales_account_id:
        account = await read(views.account, stores.sales, customer.sales_account_id)
        return f"The account {account.name}" if account else None
    if customer.sales_contact_id:
        contact = await read(views.contact, stores.sales, customer.sales_contact_id)
        return f"The contact {contact.first_name} {contact.last_name}" if contact else None
    return None


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
