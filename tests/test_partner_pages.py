"""The partner's side of the site as people use it: activation, My account, users, sign-out."""

from __future__ import annotations

import re

import httpx
import pytest
from temporalio.client import Client

from settings import Settings
from stores import Stores, accounts
from tests.conftest import ADMIN, REP, MailSink, bearer, browse
from tests.test_pages import CSRF, sign_in
from tests.test_partner_accounts import approved_partner, eventually_mail, links_in
from web.app import create_app

PASSWORD = "correct horse battery"


async def csrf(web: httpx.AsyncClient, path: str) -> str:
    page = await web.get(path)
    found = CSRF.search(page.text)
    assert found, page.text
    return found[1]


async def activate(web: httpx.AsyncClient, link: str, password: str = PASSWORD) -> httpx.Response:
    path = link.removeprefix("http://b2b.test")
    token = await csrf(web, path)
    return await web.post(
        path, data={"password": password, "confirm": password, "csrf_token": token}
    )


def approval_link(mail_sink: MailSink, onboarding_id: str) -> str:
    (approval,) = [
        m
        for m in mail_sink.messages(onboarding_id)
        if m["X-Onboarding-Event"] == "prospect-approved"
    ]
    (link,) = [url for url in links_in(approval) if "/activate/" in url]
    return link


@pytest.fixture
async def administrator(
    client: Client, settings: Settings, mail_sink: MailSink, web: httpx.AsyncClient
) -> tuple[str, str]:
    """An approved partner whose administrator has activated their account, signed in on
    `web`: the request's id and the administrator's email."""
    onboarding_id, email = await approved_partner(client, settings)
    await activate(web, approval_link(mail_sink, onboarding_id))
    return onboarding_id, email


async def test_partner_activates_adds_a_user_and_removes_them(
    client: Client,
    web_settings: Settings,
    settings: Settings,
    stores: Stores,
    mail_sink: MailSink,
    web: httpx.AsyncClient,
) -> None:
    onboarding_id, admin_email = await approved_partner(client, settings)
    link = approval_link(mail_sink, onboarding_id)

    weak = await activate(web, link, password="short")
    assert weak.status_code == 422 and "at least 12 characters" in weak.text
    for password, says in (
        ("aaaaaaaaaaaa", "a character or a short group repeated"),
        ("password1234", "among the most common passwords"),
        (f"{admin_email.split('@')[0]}!!", "must not contain your email address"),
    ):
        weak = await activate(web, link, password=password)
        assert weak.status_code == 422 and says in weak.text, password
    activated = await activate(web, link)
    assert activated.status_code == 303 and activated.headers["location"] == "/account"
    account = await web.get("/account")
    assert account.status_code == 200
    assert "Contoso Srl" in account.text and "Administrator" in account.text
    assert "No credit limit has been set" in account.text

    used = await web.get(link.removeprefix("http://b2b.test"))
    assert used.status_code == 410 and "already been used" in used.text

    invitee = f"luca.{onboarding_id}@contoso.example"
    token = await csrf(web, "/account/users")
    bad = await web.post(
        "/account/users",
        data={"first_name": "Luca", "last_name": "", "email": "not-an-email", "csrf_token": token},
    )
    assert bad.status_code == 422
    assert 'id="last_name-error"' in bad.text and 'id="email-error"' in bad.text
    added = await web.post(
        "/account/users",
        data={
            "first_name": "Luca",
            "last_name": "Bianchi",
            "email": invitee,
            "locale": "it",
            "csrf_token": token,
        },
    )
    assert added.status_code == 303, added.text
    users = await web.get("/account/users")
    assert invitee in users.text and "invited" in users.text
    (invitation,) = await eventually_mail(
        mail_sink, lambda m: m["To"].addresses[0].addr_spec == invitee
    )
    again = await web.post(
        "/account/users",
        data={"first_name": "Luca", "last_name": "B", "email": admin_email, "csrf_token": token},
    )
    assert again.status_code == 409 and "already a user" in again.text

    async with browse(create_app(web_settings, client=client, stores=stores)) as luca:
        assert (await activate(luca, links_in(invitation)[0])).status_code == 303
        mine = await luca.get("/account")
        # Luca chose Italian: his pages are in it.
        assert '<html lang="it">' in mine.text
        assert (
            "Luca Bianchi" in mine.text and "Utente" in mine.text and "Il mio account" in mine.text
        )
        assert (await luca.get("/account/users")).status_code == 403
        assert (await luca.get("/sales/leads")).status_code == 303  # staff sign-in, not in

        invitee_account = accounts.partner_account_by_email(stores.commerce, invitee)
        assert invitee_account is not None
        token = await csrf(web, "/account/users")
        removed = await web.post(
            f"/account/users/{invitee_account.id}/remove", data={"csrf_token": token}
        )
        assert removed.status_code == 303
        after = await luca.get("/account")
        assert after.status_code == 303 and after.headers["location"].startswith("/signin")

    # The last administrator cannot step down.
    me = accounts.partner_account_by_email(stores.commerce, admin_email)
    assert me is not None
    token = await csrf(web, "/account/users")
    refused = await web.post(
        f"/account/users/{me.id}/role", data={"role": "b2b_user", "csrf_token": token}
    )
    assert refused.status_code == 409 and "at least one administrator" in refused.text


async def test_sign_in_sign_out_and_a_copied_cookie(
    administrator: tuple[str, str], stores: Stores, mail_sink: MailSink, web: httpx.AsyncClient
) -> None:
    _, email = administrator
    token = await csrf(web, "/account")
    assert (await web.post("/signout", data={"csrf_token": token})).status_code == 303

    token = await csrf(web, "/signin")
    wrong = await web.post(
        "/signin", data={"email": email, "password": "not the password", "csrf_token": token}
    )
    nobody = await web.post(
        "/signin",
        data={"email": "nobody@nowhere.example", "password": PASSWORD, "csrf_token": token},
    )
    assert wrong.status_code == nobody.status_code == 401
    assert re.sub(r'value="[^"]*"', "", wrong.text) == re.sub(r'value="[^"]*"', "", nobody.text)
    right = await web.post(
        "/signin", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert right.status_code == 303
    copied = dict(web.cookies)
    assert (await web.get("/account")).status_code == 200
    token = await csrf(web, "/account")
    await web.post("/signout", data={"csrf_token": token})
    web.cookies.update(copied)
    assert (await web.get("/account")).status_code == 303


async def test_a_staff_session_is_ended_by_sign_out_even_from_a_copied_cookie(
    web: httpx.AsyncClient,
) -> None:
    await sign_in(web, REP)
    copied = dict(web.cookies)
    assert (await web.get("/sales/leads")).status_code == 200
    token = await csrf(web, "/sales/leads")
    await web.post("/signout", data={"csrf_token": token})
    web.cookies.update(copied)
    assert (await web.get("/sales/leads")).status_code == 303
    assert (await web.get("/account")).status_code == 303


async def test_forgot_password_answers_alike_and_emails_the_owner(
    administrator: tuple[str, str], stores: Stores, mail_sink: MailSink, web: httpx.AsyncClient
) -> None:
    _, email = administrator
    token = await csrf(web, "/password/forgot")
    known = await web.post("/password/forgot", data={"email": email, "csrf_token": token})
    unknown = await web.post(
        "/password/forgot", data={"email": "nobody@nowhere.example", "csrf_token": token}
    )
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    (reset,) = await eventually_mail(
        mail_sink,
        lambda m: (
            m["To"].addresses[0].addr_spec == email and m["X-Onboarding-Event"] == "password-reset"
        ),
    )
    (link,) = links_in(reset)
    assert "/password/reset/" in link
    changed = await activate(web, link, password="a brand new password")
    assert changed.status_code == 303
    assert accounts.verify_password(stores.commerce, email, "a brand new password") is not None
    assert accounts.verify_password(stores.commerce, email, PASSWORD) is None


async def test_links_that_no_longer_work_say_why(web: httpx.AsyncClient) -> None:
    unknown = await web.get("/activate/not-a-real-token")
    assert unknown.status_code == 404 and "not valid" in unknown.text
    assert (await web.get("/sign-in")).headers["location"] == "/signin"
    assert (await web.get("/onboarding")).headers["location"] == "/apply"


async def test_the_partner_api_signs_in_manages_users_and_signs_out(
    administrator: tuple[str, str], stores: Stores, mail_sink: MailSink, web: httpx.AsyncClient
) -> None:
    onboarding_id, email = administrator
    assert (await web.get("/api/partner/account")).status_code == 401
    wrong = await web.post("/api/partner/sessions", json={"email": email, "password": "nope"})
    assert wrong.status_code == 401
    signed_in = await web.post("/api/partner/sessions", json={"email": email, "password": PASSWORD})
    assert signed_in.status_code == 201
    auth = {"Authorization": f"Bearer {signed_in.json()['token']}"}

    mine = (await web.get("/api/partner/account", headers=auth)).json()
    assert mine["me"]["email"] == email and mine["me"]["role"] == "b2b_admin"
    assert mine["organization_name"] == "Contoso Srl"

    bad = await web.post("/api/partner/users", headers=auth, json={"first_name": "Luca"})
    assert bad.status_code == 422
    assert {tuple(e["loc"]) for e in bad.json()["detail"]} >= {
        ("body", "last_name"),
        ("body", "email"),
    }
    invitee = f"anna.{onboarding_id}@contoso.example"
    new = {"first_name": "Anna", "last_name": "Verdi", "email": invitee}
    added = await web.post("/api/partner/users", headers=auth, json=new)
    assert added.status_code == 201, added.text
    user_id = added.json()["partner_user_id"]
    again = await web.post("/api/partner/users", headers=auth, json={**new, "email": email})
    assert again.status_code == 409 and "already a user" in again.json()["detail"]
    resent = await web.post(f"/api/partner/users/{user_id}/invitation", headers=auth)
    assert resent.status_code == 200
    await eventually_mail(mail_sink, lambda m: m["To"].addresses[0].addr_spec == invitee, 2)
    users = (await web.get("/api/partner/users", headers=auth)).json()
    assert {u["email"]: u["state"] for u in users} == {email: "active", invitee: "invited"}
    promoted = await web.put(
        f"/api/partner/users/{user_id}/role", headers=auth, json={"role": "b2b_admin"}
    )
    assert promoted.status_code == 200 and promoted.json()["role"] == "b2b_admin"
    me = accounts.partner_account_by_email(stores.commerce, email)
    assert me is not None
    # The invited administrator cannot sign in yet, so I remain the only active one.
    step_down = await web.put(
        f"/api/partner/users/{me.id}/role", headers=auth, json={"role": "b2b_user"}
    )
    assert step_down.status_code == 409
    removed = await web.delete(f"/api/partner/users/{user_id}", headers=auth)
    assert removed.status_code == 200 and removed.json()["state"] == "removed"
    assert (await web.delete(f"/api/partner/users/{user_id}", headers=auth)).status_code == 409
    assert (await web.delete("/api/partner/users/999999", headers=auth)).status_code == 404

    assert (await web.delete("/api/partner/sessions", headers=auth)).status_code == 204
    assert (await web.get("/api/partner/account", headers=auth)).status_code == 401


async def test_staff_and_partner_credentials_never_cross(
    administrator: tuple[str, str], stores: Stores, mail_sink: MailSink, web: httpx.AsyncClient
) -> None:
    onboarding_id, email = administrator
    signed_in = await web.post("/api/partner/sessions", json={"email": email, "password": PASSWORD})
    partner_bearer = {"Authorization": f"Bearer {signed_in.json()['token']}"}
    # A partner's page session and API token open no staff page or route.
    assert (await web.get("/sales/leads")).status_code == 303
    assert (await web.get("/commerce/prospects")).status_code == 303
    assert (
        await web.get(f"/api/onboarding-requests/{onboarding_id}", headers=partner_bearer)
    ).status_code == 401
    # A staff token opens no partner route, and a staff session no partner page.
    assert (await web.get("/api/partner/account", headers=bearer(REP))).status_code == 401
    await sign_in(web, REP)
    assert (await web.get("/account")).status_code == 303
    # An altered token is refused.
    altered = {"Authorization": partner_bearer["Authorization"][:-2] + "xx"}
    assert (await web.get("/api/partner/account", headers=altered)).status_code == 401


async def test_the_partner_sees_the_credit_limit_a_commerce_admin_set(
    administrator: tuple[str, str], stores: Stores, mail_sink: MailSink, web: httpx.AsyncClient
) -> None:
    _, email = administrator
    me = accounts.partner_account_by_email(stores.commerce, email)
    assert me is not None
    limit = {
        "amount": "25000.50",
        "currency": "eur",
        "limit_type": "balance_all",
        "mandatory": True,
    }
    set_it = await web.put(
        f"/api/customers/{me.organization_customer_id}/credit-limit",
        headers=bearer(ADMIN),
        json=limit,
    )
    assert set_it.status_code == 200, set_it.text

    page = await web.get("/account")
    assert "25,000.50 EUR" in page.text and "Balance + All" in page.text
    signed_in = await web.post("/api/partner/sessions", json={"email": email, "password": PASSWORD})
    auth = {"Authorization": f"Bearer {signed_in.json()['token']}"}
    mine = (await web.get("/api/partner/account", headers=auth)).json()
    assert mine["credit_limit"]["amount"] == "25000.50"
    assert mine["credit_limit"]["currency"] == "EUR" and mine["credit_limit"]["mandatory"] is True


async def test_an_administrator_reaches_no_user_of_another_partner(
    administrator: tuple[str, str],
    client: Client,
    settings: Settings,
    stores: Stores,
    web: httpx.AsyncClient,
) -> None:
    _, email = administrator
    _, other_email = await approved_partner(client, settings)
    other = accounts.partner_account_by_email(stores.commerce, other_email)
    assert other is not None
    signed_in = await web.post("/api/partner/sessions", json={"email": email, "password": PASSWORD})
    auth = {"Authorization": f"Bearer {signed_in.json()['token']}"}
    for answer in (
        await web.post(f"/api/partner/users/{other.id}/invitation", headers=auth),
        await web.delete(f"/api/partner/users/{other.id}", headers=auth),
        await web.put(
            f"/api/partner/users/{other.id}/role", headers=auth, json={"role": "b2b_user"}
        ),
    ):
        assert answer.status_code == 404, answer.text
    token = await csrf(web, "/account/users")
    page = await web.post(f"/account/users/{other.id}/remove", data={"csrf_token": token})
    assert page.status_code == 404
    assert other.email not in (await web.get("/account/users")).text
    unchanged = accounts.partner_account_by_email(stores.commerce, other_email)
    assert unchanged is not None and unchanged.state == "invited" and unchanged.role == "b2b_admin"
