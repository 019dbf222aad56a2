"""The JSON API for Commerce customers: an organisation's credit limit and its changes."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from models.partners import NewCreditLimit
from stores import credit_limits
from stores.credit_limits import CreditLimitState
from web.api import ERRORS, Problem
from web.auth import ApiCommerceAdmin, ApiUser
from web.dependencies import StoresDep, read
from web.identifiers import RowId


class ExactNumbers(Request):
    """A request whose JSON numbers with a fraction or an exponent are Decimals, not floats:
    9999999999999999.99 sent as a number must not arrive as 1e16. A key sent twice is
    refused: which of the two counts would be a guess."""

    async def json(self) -> Any:
        return json.loads(await self.body(), parse_float=Decimal, object_pairs_hook=_once_each)


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            # FastAPI answers a JSONDecodeError as a 422 that quotes its message.
            raise json.JSONDecodeError(f"the key {key!r} is sent twice", "", 0)
        found[key] = value
    return found


class ExactNumbersRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactNumbers(request.scope, request.receive))

        return exact


router = APIRouter(prefix="/api/customers", tags=["customers"], route_class=ExactNumbersRoute)


class WrongCustomerType(Problem):
    customer_type: str


class CreditLimitSetState(CreditLimitState):
    """The credit limit after a set; `changed` is false when it already had those values."""

    changed: bool


CUSTOMER_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such customer"},
    409: {
        "model": WrongCustomerType,
        "description": "The customer is not an organisation: the limit is its organisation's",
    },
}


@router.get(
    "/{customer_id}/credit-limit",
    summary="Read an organisation's credit limit",
    responses={**{k: ERRORS[k] for k in (401, 429)}, **CUSTOMER_ERRORS},
)
async def get_credit_limit(
    customer_id: RowId, user: ApiUser, stores: StoresDep
) -> CreditLimitState:
    """The organisation's credit limit (null until one is set) and its changes, newest first."""
    return await read(credit_limits.credit_limit_state, stores.commerce, customer_id)


@router.put(
    "/{customer_id}/credit-limit",
    summary="Set an organisation's credit limit",
    responses={**{k: ERRORS[k] for k in (401, 403, 413, 429)}, **CUSTOMER_ERRORS},
)
async def put_credit_limit(
    customer_id: RowId, values: NewCreditLimit, user: ApiCommerceAdmin, stores: StoresDep
) -> CreditLimitSetState:
    """Set the credit limit (a Commerce admin); the change is logged with who and when.

    Send the amount as a string ("1234.50") or a number; it is answered as a string.
    """
    done = await run_in_threadpool(
        credit_limits.set_credit_limit,
        stores.commerce,
        customer_id,
        values,
        user.name,
        datetime.now(UTC),
    )
    state = await read(credit_limits.credit_limit_state, stores.commerce, customer_id)
    return CreditLimitSetState(**state.model_dump(), changed=done.changed)
