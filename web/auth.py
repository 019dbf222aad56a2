"""Who may do what: users from `API_TOKENS`, bearer tokens for the API, a signed session
cookie and CSRF tokens for the pages."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from models.lifecycle import TEAM_NAMES, TRANSITIONS, Action, Role
from settings import Environment, Settings
from stores import Stores, accounts
from stores.accounts import PartnerAccount
from web.protection import client_key, limits

# Used when API_TOKENS is unset, and only while the web app listens on loopback.
DEMO_API_TOKENS = "mario:sales_rep:demo-rep-token,anna:commerce_admin:demo-admin-token"


class User(BaseModel):
    name: str
    role: Role
    token: str = Field(repr=False)

    def may(self, action: Action) -> bool:
        return TRANSITIONS[action].role is self.role

    def fingerprint(self, secret: bytes) -> str:
        """Kept in the session, so changing a user's token signs out their sessions.

        Keyed with the app's secret: the cookie is readable, and a plain hash of a short
        token could be reversed by guessing.
        """
        return hmac.new(secret, self.token.encode(), hashlib.sha256).hexdigest()[:32]


class Users:
    """The configured users, looked up by token (API) or by name and token (sign-in)."""

    def __init__(self, users: list[User], demo: bool) -> None:
        self.by_name = {user.name: user for user in users}
        self.demo = demo

    @classmethod
    def from_settings(cls, settings: Settings) -> Users:
        configured = settings.api_tokens.get_secret_value() if settings.api_tokens else None
        if configured is None and not _is_loopback(settings.web_host):
            raise ValueError(
                f"API_TOKENS is not set and WEB_HOST is {settings.web_host}: the demo users"
                " are for a web app on loopback only; set API_TOKENS"
            )
        if configured is None and settings.environment is Environment.PRODUCTION:
            # Behind a reverse proxy on this host every request comes from loopback.
            raise ValueError("ENVIRONMENT=production: set API_TOKENS (no demo users there)")
        return cls(parse_api_tokens(configured or DEMO_API_TOKENS), demo=configured is None)

    def by_token(self, token: str) -> User | None:
        found = None
        for user in self.by_name.values():
            # Compare with every user, in constant time, so timing tells nothing.
            if hmac.compare_digest(user.token.encode(), token.encode()):
                found = user
        return found

    def sign_in(self, name: str, token: str) -> User | None:
        user = self.by_name.get(name)
        if user is None or not hmac.compare_digest(user.token.encode(), token.encode()):
            return None
        return user


def parse_api_tokens(value: str) -> list[User]:
    users: list[User] = []
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, _, rest = entry.partition(":")
        role, _, token = rest.partition(":")
        if not name or not token or role not in set(Role):
            raise ValueError(
                "API_TOKENS entries must be name:role:token with role sales_rep or"
                f" commerce_admin; got one starting {name[:20]!r}"
            )
        if len(token) < 8:
            raise ValueError(f"API_TOKENS: the token of {name!r} must be at least 8 characters")
        if any(user.name == name for user in users):
            raise ValueError(f"API_TOKENS names {name!r} twice")
        if any(user.token == token for user in users):
            raise ValueError(f"API_TOKENS: {name!r} shares a token with another user")
        users.append(User(name=name, role=Role(role), token=token))
    if not users:
        raise ValueError("API_TOKENS names no users")
    return users


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


NOBODY = Users([], demo=True)


def get_users(request: Request) -> Users:
    """The users a request may sign in as: the demo users only from this machine."""
    users: Users = request.app.state.users
    if users.demo and not _is_loopback(request.client.host if request.client else ""):
        return NOBODY
    return users


# --- the API: bearer tokens -----------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="A token from API_TOKENS")


def api_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The caller named by `Authorization: Bearer <token>`; 401 without a known token."""
    if credentials is None:
        raise HTTPException(
            401, "sign in: send Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"}
        )
    attempt = limits(request).bearer.begin(client_key(request))
    user = get_users(request).by_token(credentials.credentials)
    if user is None:
        attempt.failed()
        raise HTTPException(401, "unknown token", {"WWW-Authenticate": "Bearer"})
    attempt.succeeded()
    return user


ApiUser = Annotated[User, Depends(api_user)]


def api_user_of(role: Role) -> object:
    """A dependency for an API route of one role: 403 for a known user of another.

    Checked before the body is read, so a user without the role learns nothing from 422s.
    """

    def dependency(user: ApiUser) -> User:
        if user.role is not role:
            raise HTTPException(
                403, f"{user.name} is a {user.role.value}; this needs a {role.value}"
            )
        return user

    return Depends(dependency)


ApiCommerceAdmin = Annotated[User, api_user_of(Role.COMMERCE_ADMIN)]
ApiSalesRep = Annotated[User, api_user_of(Role.SALES_REP)]


# --- the pages: a session cookie and CSRF tokens --------------------------------------


class SignInRequired(Exception):
    """A page needs a signed-in user; the app redirects to the sign-in form."""


class RoleRequired(Exception):
    def __init__(self, role: Role) -> None:
        super().__init__(f"this page is for the {TEAM_NAMES[role]}")
        self.role = role


# How long a page session lasts; the cookie and the server-side row agree.
SESSION_LIFETIME = timedelta(hours=8)
_UNSET = object()


def _stores(request: Request) -> Stores:
    stores: Stores = request.app.state.stores
    return stores


def session_user(request: Request) -> User | None:
    """The staff user signed in on this browser, while their session has not ended."""
    cached = getattr(request.state, "staff_user", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[return-value]
    user = _staff_session(request)
    request.state.staff_user = user
    return user


def _staff_session(request: Request) -> User | None:
    name, token = request.session.get("user"), request.session.get("staff_session")
    user = get_users(request).by_name.get(name) if isinstance(name, str) else None
    secret: bytes = request.app.state.secret
    if (
        user is None
        or not isinstance(token, str)
        or not hmac.compare_digest(
            str(request.session.get("fingerprint", "")), user.fingerprint(secret)
        )
    ):
        return None
    subject = accounts.session_subject(_stores(request).commerce, accounts.STAFF, token)
    return user if subject == user.name else None


def start_session(request: Request, user: User) -> None:
    token = accounts.start_session(
        _stores(request).commerce, accounts.STAFF, user.name, SESSION_LIFETIME
    )
    _fresh_session(request)
    request.session.update(
        user=user.name,
        fingerprint=user.fingerprint(request.app.state.secret),
        staff_session=token,
    )


def partner_session(request: Request) -> PartnerAccount | None:
    """The partner user signed in on this browser, while active and in their hierarchy."""
    cached = getattr(request.state, "partner", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[return-value]
    token = request.session.get("partner_session")
    account = (
        accounts.partner_session_account(_stores(request).commerce, token)
        if isinstance(token, str)
        else None
    )
    request.state.partner = account
    return account


def start_partner_session(request: Request, account: PartnerAccount) -> None:
    token = accounts.start_session(
        _stores(request).commerce, accounts.PARTNER, str(account.id), SESSION_LIFETIME
    )
    _fresh_session(request)
    request.session["partner_session"] = token
    request.session["lang"] = account.locale


def end_session(request: Request) -> None:
    """Sign out: the session ends on the server, so a copied cookie opens nothing."""
    for key in ("staff_session", "partner_session"):
        token = request.session.get(key)
        if isinstance(token, str):
            accounts.end_session(_stores(request).commerce, token)
    request.session.clear()


def _fresh_session(request: Request) -> None:
    request.session.clear()
    # A fresh CSRF token per sign-in, so one seen before signing in is worthless.
    request.session["csrf"] = secrets.token_urlsafe(32)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


class CsrfFailed(Exception):
    """A form POST without the session's CSRF token: forged, or from an expired page."""


def check_csrf(request: Request, csrf_token: Annotated[str, Form()] = "") -> None:
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(
        expected.encode(), csrf_token.encode()
    ):
        raise CsrfFailed


def page_user(role: Role) -> object:
    """A dependency for a page of one role: signed in, with that role."""

    def dependency(request: Request) -> User:
        user = session_user(request)
        if user is None:
            raise SignInRequired
        if user.role is not role:
            raise RoleRequired(role)
        return user

    return Depends(dependency)


class PartnerSignInRequired(Exception):
    """A partner page needs a signed-in partner user; the app redirects to sign-in."""


class AdministratorRequired(Exception):
    """A page for the partner's B2B administrators only."""


def _partner_page(request: Request) -> PartnerAccount:
    account = partner_session(request)
    if account is None:
        raise PartnerSignInRequired
    return account


def _administrator_page(request: Request) -> PartnerAccount:
    account = _partner_page(request)
    if not account.is_admin:
        raise AdministratorRequired
    return account


PartnerUser = Annotated[PartnerAccount, Depends(_partner_page)]
PartnerAdministrator = Annotated[PartnerAccount, Depends(_administrator_page)]
SalesRep = Annotated[User, page_user(Role.SALES_REP)]
CommerceAdmin = Annotated[User, page_user(Role.COMMERCE_ADMIN)]
CsrfChecked = Depends(check_csrf)
