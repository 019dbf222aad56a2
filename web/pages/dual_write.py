"""Dual-write's pages: the edit form on an account, a contact and a customer (each change
then crosses to the other store), and the Commerce admins' page of the sync: pause and
resume, the backlog, the error list with Retry and Skip, the conflicts, the field map."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from client import dual_write as dual_write_client
from client.connection import TemporalUnavailable
from models.dual_write import (
    EDITS,
    Direction,
    Entity,
    Side,
    editable,
    field_map_rows,
    mapped,
    read_only,
)
from models.partners import hierarchy_role_words
from models.requests import REASON_MAX
from stores import Stores, dual_write
from web.auth import CommerceAdmin, CsrfChecked, SalesRep
from web.dependencies import StoresDep, TemporalDep, read
from web.identifiers import RowId
from web.templating import flash, render

router = APIRouter(include_in_schema=False)
# Where each side's records are edited, by map.
PATHS = {
    (Side.SALES, Entity.ORGANIZATION): "/sales/accounts/{}",
    (Side.SALES, Entity.PERSON): "/sales/contacts/{}",
    (Side.COMMERCE, Entity.ORGANIZATION): "/commerce/customers/{}",
    (Side.COMMERCE, Entity.PERSON): "/commerce/customers/{}",
}
# A read-only field's value in words, where the store keeps a code.
SHOWN: dict[str, Callable[[Any], str]] = {
    "partner_role": hierarchy_role_words,
    "active": lambda active: "yes" if active else "no",
}


def _engine(stores: Stores, side: Side) -> Engine:
    return stores.sales if side is Side.SALES else stores.commerce


async def edit_form(
    stores: Stores,
    side: Side,
    entity: Entity,
    record_id: int,
    typed: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What a record's page shows of dual-write: the form of the fields edited on this side,
    and those only the other side writes, read-only."""
    now = await read(dual_write.record_values, _engine(stores, side), side, entity, record_id)
    return {
        "action": PATHS[side, entity].format(record_id) + "/edit",
        "fields": [(f.name, f.words) for f in editable(entity, side)],
        "read_only": [
            (mapped(entity, name).words, _shown(name, now[name]))
            for name in read_only(entity, side)
        ],
        "other": side.other.value.title(),
        "typed": typed if typed is not None else {k: v or "" for k, v in now.items()},
        "errors": errors or {},
    }


def _shown(name: str, value: Any) -> Any:
    return SHOWN[name](value) if name in SHOWN and value is not None else value


async def _save(
    request: Request, stores: Stores, side: Side, entity: Entity, record_id: int, actor: str
) -> Response:
    form = await request.form()
    names = [f.name for f in editable(entity, side)]
    typed = {name: str(form.get(name) or "").strip() for name in names}
    try:
        edit = EDITS[entity, side].model_validate(
            {name: value or None for name, value in typed.items()}
        )
    except ValidationError as err:
        errors: dict[str, str] = {}
        for error in err.errors():
            message = error["msg"].removeprefix("Value error, ")
            errors.setdefault(str(error["loc"][0]), message[:1].upper() + message[1:] + ".")
        sync = await edit_form(stores, side, entity, record_id, typed, errors)
        return render(request, "dual_write/edit.html", 422, sync=sync)
    try:
        await run_in_threadpool(
            dual_write.edit,
            _engine(stores, side),
            side,
            entity,
            record_id,
            edit.changes(),
            actor,
            datetime.now(UTC),
        )
    except dual_write.NoSuchRecord as err:
        raise HTTPException(404, "There is no such record.") from err
    except dual_write.EditRefused as err:
        # The one rule an edit can meet in a store: an email already another user's.
        errors = {"email": f"{str(err)[:1].upper()}{str(err)[1:]}."}
        sync = await edit_form(stores, side, entity, record_id, typed, errors)
        return render(request, "dual_write/edit.html", 409, sync=sync)
    flash(request, f"Saved. {side.other.value.title()} follows within seconds.", "success")
    return RedirectResponse(PATHS[side, entity].format(record_id), status_code=303)


@router.post("/sales/accounts/{account_id}/edit", dependencies=[CsrfChecked])
async def edit_account(
    request: Request, account_id: RowId, user: SalesRep, stores: StoresDep
) -> Response:
    """Change an account's name, address, phone or website."""
    return await _save(request, stores, Side.SALES, Entity.ORGANIZATION, account_id, user.name)


@router.post("/sales/contacts/{contact_id}/edit", dependencies=[CsrfChecked])
async def edit_contact(
    request: Request, contact_id: RowId, user: SalesRep, stores: StoresDep
) -> Response:
    """Change a contact's names, job title, phone or email."""
    return await _save(request, stores, Side.SALES, Entity.PERSON, contact_id, user.name)


@router.post("/commerce/customers/{customer_id}/edit", dependencies=[CsrfChecked])
async def edit_customer(
    request: Request, customer_id: RowId, user: CommerceAdmin, stores: StoresDep
) -> Response:
    """Change an organisation or person customer."""
    try:
        entity = await read(dual_write.commerce_entity, stores.commerce, customer_id)
    except dual_write.NoSuchRecord as err:
        raise HTTPException(404, "There is no such customer.") from err
    return await _save(request, stores, Side.COMMERCE, entity, customer_id, user.name)


# --- the sync's page ---------------------------------------------------------------------


@router.get("/commerce/dual-write")
async def sync_page(
    request: Request, user: CommerceAdmin, stores: StoresDep, temporal: TemporalDep
) -> Response:
    """Dual-write: paused or running, what waits, what was refused, what conflicted."""
    engines = dual_write.engines_of(stores.sales, stores.commerce)
    try:
        states = await dual_write_client.states(await temporal.get())
    except TemporalUnavailable:
        states = None
    return render(
        request,
        "dual_write/sync.html",
        states=states,
        paused=bool(states) and any(state.paused for state in states or []),
        backlog=await read(dual_write.backlog, engines),
        errors=await read(dual_write.errors, engines),
        conflicts=await read(dual_write.conflicts, engines),
        field_map=field_map_rows(),
        reason_max=REASON_MAX,
    )


@router.post("/commerce/dual-write/{action}", dependencies=[CsrfChecked])
async def pause_or_resume(
    request: Request, action: str, user: CommerceAdmin, temporal: TemporalDep
) -> Response:
    """Pause the sync for maintenance, or resume it."""
    if action not in ("pause", "resume"):
        raise HTTPException(404, "There is no such page.")
    change = dual_write_client.pause if action == "pause" else dual_write_client.resume
    try:
        await change(await temporal.get(), user.name)
    except dual_write_client.SyncRefused as err:
        flash(request, f"Not changed: {err}.", "error")
    else:
        words = "paused: changes wait, in order" if action == "pause" else "running again"
        flash(request, f"The sync is {words}.", "success")
    return RedirectResponse("/commerce/dual-write", status_code=303)


@router.post(
    "/commerce/dual-write/errors/{direction}/{change_id}/retry", dependencies=[CsrfChecked]
)
async def retry_error(
    request: Request, direction: Direction, change_id: RowId, user: CommerceAdmin, stores: StoresDep
) -> Response:
    """Send a refused change again."""
    source = direction.source
    try:
        await run_in_threadpool(dual_write.retry, _engine(stores, source), source, change_id)
    except dual_write.NotOnTheErrorList as err:
        flash(request, f"Not changed: {err}.", "error")
    else:
        flash(request, "Sent again: it crosses first for its record.", "success")
    return RedirectResponse("/commerce/dual-write#errors", status_code=303)


@router.post("/commerce/dual-write/errors/{direction}/{change_id}/skip", dependencies=[CsrfChecked])
async def skip_error(
    request: Request,
    direction: Direction,
    change_id: RowId,
    reason: Annotated[str, Form(max_length=REASON_MAX)],
    user: CommerceAdmin,
    stores: StoresDep,
) -> Response:
    """Never send a refused change; who and why are kept."""
    source = direction.source
    if not reason.strip():
        flash(request, "Not skipped: say why.", "error")
        return RedirectResponse("/commerce/dual-write#errors", status_code=303)
    try:
        await run_in_threadpool(
            dual_write.skip, _engine(stores, source), source, change_id, user.name, reason.strip()
        )
    except dual_write.NotOnTheErrorList as err:
        flash(request, f"Not changed: {err}.", "error")
    else:
        flash(request, "Skipped: the record's later changes cross.", "success")
    return RedirectResponse("/commerce/dual-write#errors", status_code=303)
