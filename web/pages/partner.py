"""The partner's side of the B2B site: sign-in, emailed links, My account, its users.

No page tells whether an address has an account: sign-in failures and "forgot your
password" answer alike either way.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from client.connection import NotYetConfirmed
from client.partner_users import partner_link_used
from models.dual_write import EDITS, Entity, Side
from models.partners import (
    PASSWORD_MIN,
    NewPartnerUser,
    PartnerRole,
    Password,
    PasswordWeakness,
    password_weakness,
)
from models.requests import IDEMPOTENCY_KEY, Locale
from stores import Stores, accounts, dual_write
from stores.accounts import PartnerAccount
from stores.credit_limits import CreditLimitView, credit_limit
from web.auth import (
    CsrfChecked,
    PartnerAdministrator,
    PartnerUser,
    csrf_token,
    start_partner_session,
)
from web.dependencies import ClientDep, SettingsDep, StoresDep, get_client
from web.i18n import N_, page_locale, translator
from web.identifiers import RowId
from web.pages.account import safe_next
from web.pages.public import field_errors
from web.partners import (
    NO_SUCH_USER,
    PartnerActionRefused,
    actor,
    add_user,
    change_role,
    email_fresh_link,
    remove,
    resend,
)
from web.protection import SubmitLimited, client_key, limits
from web.templating import flash, not_confirmed, render

router = APIRouter(include_in_schema=False)
# What a partner administrator changes of their own organisation on My account.
OWN_ORGANIZATION_FIELDS = ("address", "phone")

WRONG_PASSWORD = N_("That email and password do not match an active account.")
PASSWORD_SET = N_("Your password is set: you are signed in.")
PASSWORDS_DIFFER = N_("The two passwords differ.")
PASSWORD_TOO_SHORT = N_("Please choose a password of at least %(length)s characters.")
PASSWORD_SPACES = N_("Please do not start or end the password with a space.")
PASSWORD_WEAK = {
    PasswordWeakness.REPEATS: N_(
        "Please choose another password: a character or a short group repeated is easy to guess."
    ),
    PasswordWeakness.PATTERN: N_(
        "Please choose another password: a sequence or a row of the keyboard is easy to guess."
    ),
    PasswordWeakness.COMMON: N_(
        "Please choose another password: this one is among the most common passwords, or"
        " close to one."
    ),
    PasswordWeakness.PERSONAL: N_(
        "Please choose another password: it must not contain your email address or your"
        " company's name."
    ),
    PasswordWeakness.GUESSABLE: N_(
        "Please choose another password: this one is easy to guess. A few words that do not"
        " belong together make a strong one."
    ),
}
INVITED = N_("%(name)s is invited: the email is on its way.")
DONE = {
    "resend": N_("A fresh invitation is on its way; the earlier link no longer works."),
    "remove": N_("The user is removed: they can no longer sign in."),
    "role": N_("The role is changed."),
}
LINK_WORDS = {
    "unknown": N_("This link is not valid. Check that you copied all of it."),
    "used": N_("This link has already been used."),
    "superseded": N_("A newer link has been sent since this one; use the newest email."),
    "expired": N_("This link has expired."),
    "removed": N_("This account has been closed by your organisation's administrator."),
}
# Words the models give (`PartnerRole.words`, `CreditLimitType.words`), shown translated.
SHOWN_WORDS = (
    N_("Administrator"),
    N_("User"),
    N_("None"),
    N_("Balance"),
    N_("Balance + packing slip or product receipt"),
    N_("Balance + All"),
)
NEW_USER_FIELDS = tuple(NewPartnerUser.model_fields)


@router.get("/sign-in")
async def old_sign_in_link() -> Response:
    """Approval emails sent before accounts existed link here."""
    return RedirectResponse("/signin", status_code=301)


@router.get("/onboarding")
async def old_apply_link() -> Response:
    """Rejection emails sent before this version link here."""
    return RedirectResponse("/apply", status_code=301)


@router.get("/signin")
async def sign_in_form(request: Request, next: str = "") -> Response:
    """Partners sign in with their email and password."""
    return render(
        request,
        "partner/signin.html",
        locale=page_locale(request),
        next=safe_next(next),
        email="",
        error=None,
    )


@router.post("/signin", dependencies=[CsrfChecked])
async def sign_in(
    request: Request,
    stores: StoresDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Check the email and password; start a partner session.

    Failures only are counted, per address and per account (the email tried).
    """
    guard, tried = limits(request).partner_sign_in, email.strip()
    attempt = await run_in_threadpool(guard.begin, client_key(request), tried)
    account = await run_in_threadpool(accounts.verify_password, stores.commerce, tried, password)
    if account is None:
        await run_in_threadpool(attempt.failed)
        locale = page_locale(request)
        error = translator(locale)(WRONG_PASSWORD)
        return render(
            request,
            "partner/signin.html",
            status_code=401,
            locale=locale,
            next=safe_next(next),
            email=email,
            error=error,
        )
    await run_in_threadpool(attempt.succeeded)
    start_partner_session(request, account)
    return RedirectResponse(safe_next(next) or "/account", status_code=303)


# --- emailed links ---------------------------------------------------------------------


@router.get("/activate/{token}")
@router.get("/password/reset/{token}")
async def link_form(request: Request, token: str, stores: StoresDep) -> Response:
    """Choose a password through an emailed link, or learn why the link no longer works."""
    try:
        opened = await run_in_threadpool(accounts.open_link, stores.commerce, token[:100])
    except accounts.LinkRefused as refused:
        return _refused(request, refused)
    return render(
        request,
        "partner/choose_password.html",
        locale=page_locale(request, opened.account.locale),
        link=opened,
        error=None,
    )


@router.post("/activate/{token}", dependencies=[CsrfChecked])
@router.post("/password/reset/{token}", dependencies=[CsrfChecked])
async def use_link(
    request: Request,
    token: str,
    stores: StoresDep,
    settings: SettingsDep,
    password: Annotated[str, Form(max_length=256)] = "",
    confirm: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """Set the password, spend the link, sign in."""
    try:
        opened = await run_in_threadpool(accounts.open_link, stores.commerce, token[:100])
    except accounts.LinkRefused as refused:
        return _refused(request, refused)
    error = _password_problem(
        password, confirm, opened.account, page_locale(request, opened.account.locale)
    )
    if error is not None:
        return render(
            request,
            "partner/choose_password.html",
            status_code=422,
            locale=page_locale(request, opened.account.locale),
            link=opened,
            error=error,
        )
    try:
        account = await run_in_threadpool(accounts.use_link, stores.commerce, token, password)
    except accounts.LinkRefused as refused:
        return _refused(request, refused)
    await partner_link_used(await get_client(request), account.email)
    start_partner_session(request, account)
    flash(request, translator(page_locale(request, account.locale))(PASSWORD_SET))
    return RedirectResponse("/account", status_code=303)


@router.post("/links/{token}/fresh", dependencies=[SubmitLimited, CsrfChecked])
async def fresh_link(
    request: Request, token: str, stores: StoresDep, settings: SettingsDep
) -> Response:
    """An expired or used link: email its owner a fresh one, to the address on record."""
    locale = page_locale(request)
    try:
        await run_in_threadpool(accounts.open_link, stores.commerce, token[:100])
    except accounts.LinkRefused as refused:
        if refused.account is not None:
            links_asked = limits(request).links_asked
            await email_fresh_link(
                await get_client(request), settings, links_asked, refused.account
            )
        # In the language the refused link's page was in.
        locale = _link_locale(request, refused)
    return render(request, "partner/link_sent.html", locale=locale)


@router.get("/password/forgot")
async def forgot_form(request: Request) -> Response:
    """Ask for a link to choose a new password (or a first one)."""
    return render(request, "partner/forgot.html", locale=page_locale(request), email="")


@router.post("/password/forgot", dependencies=[SubmitLimited, CsrfChecked])
async def forgot(
    request: Request,
    stores: StoresDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=254)] = "",
) -> Response:
    """Email a link if the address has an account; the answer is the same either way."""
    account = await run_in_threadpool(
        accounts.partner_account_by_email, stores.commerce, email.strip()
    )
    if account is not None:
        links_asked = limits(request).links_asked
        await email_fresh_link(await get_client(request), settings, links_asked, account)
    return render(request, "partner/link_sent.html", locale=page_locale(request))


def _link_locale(request: Request, refused: accounts.LinkRefused) -> Locale:
    """A refused link's pages speak its owner's language, unless the visitor switched."""
    return page_locale(request, refused.account.locale if refused.account else None)


def _refused(request: Request, refused: accounts.LinkRefused) -> Response:
    offer = refused.account is not None and refused.why in ("expired", "used", "superseded")
    return render(
        request,
        "partner/link_refused.html",
        locale=_link_locale(request, refused),
        status_code=410 if refused.why != "unknown" else 404,
        words=LINK_WORDS[refused.why],
        offer=offer,
    )


def _password_problem(
    password: str, confirm: str, account: PartnerAccount, locale: Locale
) -> str | None:
    _ = translator(locale)
    try:
        NewPassword.model_validate({"password": password})
    except ValidationError:
        if password != password.strip():
            return _(PASSWORD_SPACES)
        return _(PASSWORD_TOO_SHORT, length=str(PASSWORD_MIN))
    weakness = password_weakness(password, account.email, account.organization_name)
    if weakness is not None:
        return _(PASSWORD_WEAK[weakness])
    if password != confirm:
        return _(PASSWORDS_DIFFER)
    return None


class NewPassword(BaseModel):
    password: Password


# --- My account ------------------------------------------------------------------------


@router.get("/account")
async def my_account(request: Request, me: PartnerUser, stores: StoresDep) -> Response:
    """My account: the organisation, its customer hierarchy and its credit limit."""
    return await _my_account(request, me, stores)


async def _my_account(
    request: Request,
    me: PartnerAccount,
    stores: Stores,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    users = await run_in_threadpool(
        accounts.organization_users, stores.commerce, me.organization_customer_id
    )
    organization = await run_in_threadpool(
        dual_write.record_values,
        stores.commerce,
        Side.COMMERCE,
        Entity.ORGANIZATION,
        me.organization_customer_id,
    )
    return render(
        request,
        "partner/account.html",
        status_code,
        locale=page_locale(request, me.locale),
        me=me,
        members=[user for user in users if user.role is not None],
        credit=await _credit_limit(stores, me),
        organization=typed
        if typed is not None
        else {name: organization[name] or "" for name in OWN_ORGANIZATION_FIELDS},
        errors=errors or {},
    )


@router.post("/account/organization", dependencies=[CsrfChecked])
async def edit_own_organization(
    request: Request, me: PartnerAdministrator, stores: StoresDep
) -> Response:
    """An administrator changes their organisation's address and phone (Sales follows)."""
    form = await request.form()
    typed = {name: str(form.get(name) or "").strip() for name in OWN_ORGANIZATION_FIELDS}
    try:
        edit = EDITS[Entity.ORGANIZATION, Side.COMMERCE].model_validate(
            {name: value or None for name, value in typed.items()}
        )
    except ValidationError as err:
        errors = field_errors(err, page_locale(request, me.locale), OWN_ORGANIZATION_FIELDS)
        return await _my_account(request, me, stores, typed, errors, 422)
    await run_in_threadpool(
        dual_write.edit,
        stores.commerce,
        Side.COMMERCE,
        Entity.ORGANIZATION,
        me.organization_customer_id,
        edit.changes(),
        actor(me),
        datetime.now(UTC),
    )
    _ = translator(page_locale(request, me.locale))
    flash(request, _(N_("Your organisation's address and phone are saved.")))
    return RedirectResponse("/account#organization", status_code=303)


@router.get("/account/users")
async def users_page(request: Request, me: PartnerAdministrator, stores: StoresDep) -> Response:
    """Organisation users: who may sign in for the partner, with their state and role."""
    return await _users(request, me, stores)


@router.post("/account/users", dependencies=[CsrfChecked])
async def add_user_form(
    request: Request,
    me: PartnerAdministrator,
    stores: StoresDep,
    client: ClientDep,
    settings: SettingsDep,
) -> Response:
    """Add a user: into the hierarchy with role User, and an invitation by email."""
    form = await request.form()
    values = {name: str(form.get(name) or "") for name in NEW_USER_FIELDS}
    request_id = str(form.get("request_id") or "")
    if not re.match(IDEMPOTENCY_KEY, request_id):
        request_id = uuid.uuid4().hex
    values["request_id"] = request_id
    try:
        new = NewPartnerUser(
            **{name: values[name] for name in NEW_USER_FIELDS if values[name].strip()}
        )
    except ValidationError as err:
        errors = field_errors(err, page_locale(request, me.locale), NEW_USER_FIELDS)
        return await _users(request, me, stores, values=values, errors=errors, status_code=422)
    try:
        # The action and the adder are part of the id: the same form is one invitation.
        invitations = limits(request).invitations
        request_id = f"form:invite:{me.id}:{request_id}"
        await add_user(client, settings, invitations, me, new, request_id)
    except NotYetConfirmed:
        # "Check again" posts the same form, id included: the same invitation.
        return not_confirmed(
            request,
            N_("The invitation is recorded, and not yet confirmed."),
            what="invitation",
            fields={**values, "csrf_token": csrf_token(request)},
            locale=page_locale(request, me.locale),
        )
    except PartnerActionRefused as refused:
        _ = translator(page_locale(request, me.locale))
        errors = {"email": refused.text(_)}
        return await _users(
            request, me, stores, values=values, errors=errors, status_code=refused.status
        )
    _ = translator(page_locale(request, me.locale))
    flash(request, _(INVITED, name=f"{new.first_name} {new.last_name}"))
    return RedirectResponse("/account/users", status_code=303)


@router.post("/account/users/{user_id}/{action}", dependencies=[CsrfChecked])
async def user_action(
    request: Request,
    user_id: RowId,
    action: str,
    me: PartnerAdministrator,
    stores: StoresDep,
    client: ClientDep,
    settings: SettingsDep,
    role: Annotated[PartnerRole | None, Form()] = None,
) -> Response:
    """Resend an invitation, remove a user, or change their role."""
    locale = page_locale(request, me.locale)
    _ = translator(locale)
    try:
        if action == "resend":
            await resend(client, settings, stores, limits(request).invitations, me, user_id)
        elif action == "remove":
            await remove(client, settings, stores, me, user_id)
        elif action == "role" and role is not None:
            await change_role(stores, me, user_id, role)
        else:
            raise PartnerActionRefused(404, NO_SUCH_USER)
    except PartnerActionRefused as refused:
        if refused.status == 404:
            return render(
                request,
                "error.html",
                status_code=404,
                locale=locale,
                status=404,
                detail=refused.text(_),
            )
        return await _users(
            request, me, stores, refusal=refused.text(_), status_code=refused.status
        )
    flash(request, _(DONE[action]))
    if user_id == me.id and action in ("remove", "role"):
        return RedirectResponse("/account", status_code=303)
    return RedirectResponse("/account/users", status_code=303)


async def _users(
    request: Request,
    me: PartnerAdministrator,
    stores: StoresDep,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    refusal: str | None = None,
    status_code: int = 200,
) -> Response:
    users = await run_in_threadpool(
        accounts.organization_users, stores.commerce, me.organization_customer_id
    )
    return render(
        request,
        "partner/users.html",
        status_code=status_code,
        locale=page_locale(request, me.locale),
        me=me,
        users=users,
        # A new user's language starts as the page's (the template's default).
        values=values or {},
        errors=errors or {},
        refusal=refusal,
        roles=list(PartnerRole),
    )


async def _credit_limit(stores: StoresDep, me: PartnerUser) -> CreditLimitView | None:
    return await run_in_threadpool(credit_limit, stores.commerce, me.organization_customer_id)
