"""Staff signing in and out of the pages, with the users of `API_TOKENS`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from models.lifecycle import Role
from web.auth import CsrfChecked, User, end_session, get_users, start_session
from web.protection import client_key, limits
from web.templating import render

router = APIRouter(include_in_schema=False)

HOME = {Role.SALES_REP: "/sales/leads", Role.COMMERCE_ADMIN: "/commerce/prospects"}


@router.get("/staff/signin")
async def sign_in_form(request: Request, next: str = "") -> Response:
    """The sign-in form for reps and admins."""
    return render(request, "signin.html", next=safe_next(next), name="", error=None)


@router.post("/staff/signin", dependencies=[CsrfChecked])
async def sign_in(
    request: Request,
    name: Annotated[str, Form(max_length=100)] = "",
    token: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Check the name and token; start a session."""
    attempt = await run_in_threadpool(
        limits(request).sign_in.begin, client_key(request), name.strip()
    )
    user = get_users(request).sign_in(name.strip(), token.strip())
    if user is None:
        await run_in_threadpool(attempt.failed)
        error = "That name and token do not match a user."
        return render(
            request, "signin.html", status_code=401, next=safe_next(next), name=name, error=error
        )
    await run_in_threadpool(attempt.succeeded)
    start_session(request, user)
    return RedirectResponse(safe_next(next) or home(user), status_code=303)


@router.post("/signout", dependencies=[CsrfChecked])
async def sign_out(request: Request) -> Response:
    """End the session, staff or partner, on the server too."""
    end_session(request)
    return RedirectResponse("/", status_code=303)


def home(user: User) -> str:
    return HOME[user.role]


def safe_next(path: str) -> str:
    """Only a path on this site: never another host (`//evil.example`, `https://…`)."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return ""
