"""The JSON API of dual-write: edit accounts, contacts and customers (each change then
crosses to the other store), pause and resume the sync, read its backlog, its error list
(with retry and skip) and its conflicts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from client import dual_write as dual_write_client
from models.dual_write import (
    EDITS,
    FIELD_MAP,
    AccountEdit,
    ContactEdit,
    Direction,
    Entity,
    Side,
    SyncState,
    read_only,
)
from models.requests import Reason
from stores import dual_write
from web.api import ERRORS, Problem
from web.auth import ApiCommerceAdmin, ApiSalesRep, ApiUser
from web.dependencies import ClientDep, StoresDep, read
from web.identifiers import RowId

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such record"}
}
router = APIRouter(
    tags=["dual-write"],
    # Every route: who may call it, and what any call may be answered.
    responses={
        **{k: ERRORS[k] for k in (401, 403, 413, 429)},
        **NOT_FOUND,
        409: {"model": Problem, "description": "The store refuses the edit (the reason)"},
    },
)
CUSTOMER_EDIT = (
    "An organisation's name, address, phone, website; a person's names, job title, phone,"
    " email. Only the fields sent change."
)


class Record(BaseModel):
    """A mapped row's fields now; `read_only` lists those only the other side writes."""

    id: int
    entity: Entity
    fields: dict[str, Any]
    read_only: list[str]


async def _edit(
    stores: Any, side: Side, entity: Entity, record_id: int, changes: dict[str, Any], actor: str
) -> Record:
    engine = stores.sales if side is Side.SALES else stores.commerce
    try:
        fields = await run_in_threadpool(
            dual_write.edit, engine, side, entity, record_id, changes, actor, datetime.now(UTC)
        )
    except dual_write.NoSuchRecord as err:
        raise HTTPException(404, str(err)) from err
    except dual_write.EditRefused as err:
        raise HTTPException(409, str(err)) from err
    return Record(
        id=record_id, entity=entity, fields=fields, read_only=list(read_only(entity, side))
    )


@router.patch("/api/sales/accounts/{account_id}", summary="Edit an account")
async def edit_account(
    account_id: RowId,
    edit: AccountEdit,  # type: ignore[valid-type]
    user: ApiSalesRep,
    stores: StoresDep,
) -> Record:
    """Change the account's name, address, phone or website (a rep); Commerce follows."""
    changes = edit.changes()  # type: ignore[attr-defined]
    return await _edit(stores, Side.SALES, Entity.ORGANIZATION, account_id, changes, user.name)


@router.patch("/api/sales/contacts/{contact_id}", summary="Edit a contact")
async def edit_contact(
    contact_id: RowId,
    edit: ContactEdit,  # type: ignore[valid-type]
    user: ApiSalesRep,
    stores: StoresDep,
) -> Record:
    """Change the contact's names, job title, phone or email (a rep); Commerce follows."""
    changes = edit.changes()  # type: ignore[attr-defined]
    return await _edit(stores, Side.SALES, Entity.PERSON, contact_id, changes, user.name)


@router.get("/api/sales/accounts/{account_id}", summary="Read an account's mapped fields")
async def get_account(account_id: RowId, user: ApiUser, stores: StoresDep) -> Record:
    """The account's fields that dual-write keeps in step, the credit limit among them."""
    return await _read(stores.sales, Side.SALES, Entity.ORGANIZATION, account_id)


@router.get("/api/sales/contacts/{contact_id}", summary="Read a contact's mapped fields")
async def get_contact(contact_id: RowId, user: ApiUser, stores: StoresDep) -> Record:
    """The contact's fields that dual-write keeps in step, its role on the B2B site among them."""
    return await _read(stores.sales, Side.SALES, Entity.PERSON, contact_id)


@router.get("/api/customers/{customer_id}", summary="Read a customer's mapped fields")
async def get_customer(customer_id: RowId, user: ApiUser, stores: StoresDep) -> Record:
    """An organisation or person customer's fields that dual-write keeps in step."""
    entity = await _entity(stores, customer_id)
    return await _read(stores.commerce, Side.COMMERCE, entity, customer_id)


@router.patch("/api/customers/{customer_id}", summary="Edit a customer")
async def edit_customer(
    customer_id: RowId,
    user: ApiCommerceAdmin,
    stores: StoresDep,
    body: Annotated[dict[str, Any], Body(description=CUSTOMER_EDIT)],
) -> Record:
    """Change an organisation or person customer (a Commerce admin); Sales follows."""
    entity = await _entity(stores, customer_id)
    try:
        edit = EDITS[entity, Side.COMMERCE].model_validate(body)
    except ValidationError as err:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)]
        ) from None
    return await _edit(stores, Side.COMMERCE, entity, customer_id, edit.changes(), user.name)


async def _entity(stores: Any, customer_id: int) -> Entity:
    try:
        return await read(dual_write.commerce_entity, stores.commerce, customer_id)
    except dual_write.NoSuchRecord as err:
        raise HTTPException(404, str(err)) from err


async def _read(engine: Any, side: Side, entity: Entity, record_id: int) -> Record:
    try:
        fields = await read(dual_write.record_values, engine, side, entity, record_id)
    except dual_write.NoSuchRecord as err:
        raise HTTPException(404, str(err)) from err
    return Record(
        id=record_id, entity=entity, fields=fields, read_only=list(read_only(entity, side))
    )


# --- the sync itself -------------------------------------------------------------------


class DualWriteState(BaseModel):
    """Each direction: paused or not, by whom since when, and what waits to cross."""

    directions: list[SyncState]
    backlog: list[dual_write.Backlog]


class SkipInput(BaseModel):
    reason: Reason


class MappedFieldView(BaseModel):
    entity: Entity
    field: str
    master: Side
    both_ways: bool


@router.get("/api/dual-write", summary="The sync's state and backlog", responses={503: ERRORS[503]})
async def get_state(user: ApiUser, stores: StoresDep, client: ClientDep) -> DualWriteState:
    """Paused or running, per direction, with how many changes wait and since when."""
    return await _state(stores, client)


async def _state(stores: Any, client: Client) -> DualWriteState:
    backlog = await read(dual_write.backlog, dual_write.engines_of(stores.sales, stores.commerce))
    return DualWriteState(directions=await dual_write_client.states(client), backlog=backlog)


PAUSE_ERRORS: dict[int | str, dict[str, Any]] = {
    503: ERRORS[503],
    409: {"model": Problem, "description": "Already paused, or not paused"},
}


@router.post("/api/dual-write/pause", summary="Pause the sync", responses=PAUSE_ERRORS)
async def pause(user: ApiCommerceAdmin, stores: StoresDep, client: ClientDep) -> DualWriteState:
    """Maintenance (a Commerce admin): answers once no change is crossing; changes then
    wait in order, never purged."""
    return await _pausing(dual_write_client.pause, user.name, stores, client)


@router.post("/api/dual-write/resume", summary="Resume the sync", responses=PAUSE_ERRORS)
async def resume(user: ApiCommerceAdmin, stores: StoresDep, client: ClientDep) -> DualWriteState:
    """What waited crosses, in order, then what comes (a Commerce admin)."""
    return await _pausing(dual_write_client.resume, user.name, stores, client)


async def _pausing(change: Any, actor: str, stores: Any, client: Client) -> DualWriteState:
    try:
        await change(client, actor)
    except dual_write_client.SyncRefused as err:
        raise HTTPException(409, str(err)) from err
    return await _state(stores, client)


@router.get("/api/dual-write/errors", summary="The error list")
async def get_errors(user: ApiUser, stores: StoresDep) -> list[dual_write.SyncError]:
    """Changes the other store refused, with the reason; each holds back its record's later ones."""
    return await read(dual_write.errors, dual_write.engines_of(stores.sales, stores.commerce))


@router.post(
    "/api/dual-write/errors/{direction}/{change_id}/retry",
    summary="Send a refused change again",
)
async def retry_error(
    direction: Direction, change_id: RowId, user: ApiCommerceAdmin, stores: StoresDep
) -> list[dual_write.SyncError]:
    """It waits first in line for its record (after fixing what the reason says)."""
    await _resolve(stores, dual_write.retry, direction, change_id)
    return await get_errors(user, stores)


@router.post(
    "/api/dual-write/errors/{direction}/{change_id}/skip",
    summary="Never send a refused change",
)
async def skip_error(
    direction: Direction,
    change_id: RowId,
    body: SkipInput,
    user: ApiCommerceAdmin,
    stores: StoresDep,
) -> list[dual_write.SyncError]:
    """Who skipped it and why are kept; the record's later changes then cross."""
    await _resolve(stores, dual_write.skip, direction, change_id, user.name, body.reason)
    return await get_errors(user, stores)


async def _resolve(stores: Any, how: Any, direction: Direction, change_id: int, *args: str) -> None:
    source = direction.source
    engine = stores.sales if source is Side.SALES else stores.commerce
    try:
        await run_in_threadpool(how, engine, source, change_id, *args)
    except dual_write.NotOnTheErrorList as err:
        raise HTTPException(404, str(err)) from err


@router.get("/api/dual-write/conflicts", summary="Conflicts the rule decided")
async def get_conflicts(user: ApiUser, stores: StoresDep) -> list[dual_write.ConflictView]:
    """Both sides changed a field before either change crossed: its master won; the lost value."""
    return await read(dual_write.conflicts, dual_write.engines_of(stores.sales, stores.commerce))


@router.get("/api/dual-write/field-map", summary="The field map")
async def get_field_map(user: ApiUser) -> list[MappedFieldView]:
    """Which fields cross, which way, and which side is each one's master."""
    return [
        MappedFieldView(entity=entity, field=f.name, master=f.master, both_ways=f.both_ways)
        for entity, fields in FIELD_MAP.items()
        for f in fields
    ]
