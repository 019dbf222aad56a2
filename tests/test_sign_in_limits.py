"""Sign-in limits as an attacker meets them (issue 23, items 4 and 5): concurrent guesses
are held to the limit in one web process and across several, no password check holds a
database connection, and guessing from one place never locks the owner out from another.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest
from fastapi import FastAPI
from temporalio.client import Client

from settings import Settings
from stores import Stores, accounts
from tests.conftest import ADMIN, REDIS_URL, REP, MailSink, browse, web_settings_for
from tests.test_pages import attempt_sign_in
from tests.test_partner_accounts import approved_partner
from tests.test_partner_pages import PASSWORD, activate, approval_link, csrf
from web.app import create_app
from web.protection import SIGN_IN_ADDRESSES_PER_ACCOUNT, SIGN_IN_LIMIT

ALLOWED = int(SIGN_IN_LIMIT.split("/")[0])
ADDRESSES = int(SIGN_IN_ADDRESSES_PER_ACCOUNT.split("/")[0])


def an_address() -> str:
    """An address of the test's own, so earlier runs' counts in Redis do not meet it."""
    return f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::1"


async def api_sign_in(app: FastAPI, address: str, email: str, password: str) -> int:
    async with browse(app, address) as web:
        answer = await web.post(
            "/api/partner/sessions", json={"email": email, "password": password}
        )
        return answer.status_code


async def page_sign_in(app: FastAPI, address: str, email: str, password: str) -> int:
    async with browse(app, address) as web:
        token = await csrf(web, "/signin")
        answer = await web.post(
            "/signin", data={"email": email, "password": password, "csrf_token": token}
        )
        return answer.status_code


async def test_concurrent_wrong_passwords_are_held_to_the_limit(
    web_settings: Settings, client: Client, stores: Stores
) -> None:
    app = create_app(web_settings, client, stores)
    email = f"someone.{uuid.uuid4().hex[:8]}@contoso.example"
    answers = await asyncio.gather(
        *(api_sign_in(app, "203.0.113.40", email, f"wrong-{n:04}-password") for n in range(40))
    )
    assert Counter(answers) == {401: ALLOWED, 429: 40 - ALLOWED}


async def test_concurrent_guesses_through_several_web_processes_share_one_limit(
    settings: Settings, client: Client, stores: Stores
) -> None:
    shared = web_settings_for(settings, rate_limit_storage_uri=REDIS_URL)
    one, two = create_app(shared, client, stores), create_app(shared, client, stores)
    address, email = an_address(), f"someone.{uuid.uuid4().hex[:8]}@contoso.example"
    answers = await asyncio.gather(
        *(
            api_sign_in(app, address, email, f"wrong-{n:04}-password")
            for n in range(15)
            for app in (one, two)
        )
    )
    assert Counter(answers) == {401: ALLOWED, 429: 30 - ALLOWED}


def test_no_password_check_holds_a_database_connection(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[int] = []
    hasher = accounts._hasher

    class Watching:
        def verify(self, stored: str, password: str) -> Any:
            held.append(stores.commerce.pool.checkedout())  # type: ignore[attr-defined]
            return hasher.verify(stored, password)

    monkeypatch.setattr(accounts, "_hasher", Watching())
    assert accounts.verify_password(stores.commerce, "nobody@contoso.example", "x" * 12) is None
    assert held == [0]


async def test_guessing_from_one_address_does_not_lock_the_owner_out_from_another(
    settings: Settings, client: Client, stores: Stores, mail_sink: MailSink, worker: None
) -> None:
    app = create_app(web_settings_for(settings), client, stores)
    onboarding_id, email = await approved_partner(client, settings)
    async with browse(app) as web:
        assert (await activate(web, approval_link(mail_sink, onboarding_id))).status_code == 303
    attacker, owner = an_address(), an_address()
    guesses = [await api_sign_in(app, attacker, email, "not-the-password") for _ in range(ALLOWED)]
    assert guesses == [401] * ALLOWED
    assert await api_sign_in(app, attacker, email, PASSWORD) == 429
    assert await page_sign_in(app, attacker, email, PASSWORD) == 429
    # The owner, from an address never seen before, on the API and the page.
    assert await api_sign_in(app, owner, email, PASSWORD) == 201
    assert await page_sign_in(app, owner, email, PASSWORD) == 303


async def test_many_addresses_guessing_one_account_stop_new_addresses_only(
    web_settings: Settings, client: Client, stores: Stores
) -> None:
    app = create_app(web_settings, client, stores)
    # mario has signed in from home before.
    assert await attempt_sign_in(app, "203.0.113.1", *REP[::2]) == 303
    guesses = [
        await attempt_sign_in(app, f"198.51.100.{n}", REP[0], "guess-me") for n in range(ADDRESSES)
    ]
    assert guesses == [401] * ADDRESSES
    # A new address is refused for mario's account, and for nobody else's...
    assert await attempt_sign_in(app, "203.0.113.2", *REP[::2]) == 429
    assert await attempt_sign_in(app, "203.0.113.2", *ADMIN[::2]) == 303
    # ...while mario at home, and an address already counted, still get in.
    assert await attempt_sign_in(app, "203.0.113.1", *REP[::2]) == 303
    assert await attempt_sign_in(app, "198.51.100.0", *REP[::2]) == 303


async def test_a_staff_name_is_not_locked_by_guesses_from_one_address(
    web_settings: Settings, client: Client, stores: Stores
) -> None:
    app = create_app(web_settings, client, stores)
    guesses = [await attempt_sign_in(app, "198.51.100.7", REP[0], "guess") for _ in range(ALLOWED)]
    assert guesses == [401] * ALLOWED
    assert await attempt_sign_in(app, "198.51.100.7", *REP[::2]) == 429
    assert await attempt_sign_in(app, "203.0.113.9", *REP[::2]) == 303


async def test_successful_sign_ins_are_not_counted(
    web_settings: Settings, client: Client, stores: Stores
) -> None:
    app = create_app(web_settings, client, stores)
    answers = {await attempt_sign_in(app, "203.0.113.1", *REP[::2]) for _ in range(ALLOWED + 2)}
    assert answers == {303}


async def test_concurrent_calls_with_a_good_token_are_never_refused(
    web_settings: Settings, client: Client, stores: Stores
) -> None:
    app = create_app(web_settings, client, stores)

    async def call(token: str) -> int:
        async with browse(app, "203.0.113.50") as web:
            answer = await web.get(
                "/api/onboarding-requests/0123456789abcdef", headers=token_of(token)
            )
            return answer.status_code

    answers = await asyncio.gather(*(call(REP[2]) for _ in range(3 * ALLOWED)))
    assert set(answers) == {404}
    guesses = [await call("not-a-token") for _ in range(ALLOWED + 1)]
    assert guesses == [401] * ALLOWED + [429]


def token_of(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
