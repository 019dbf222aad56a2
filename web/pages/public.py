"""The B2B site: landing page, onboarding form, confirmation, and the requester's status page.

Every page here is in the visitor's language (`web.i18n.page_locale`).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import unquote_plus, unquote_to_bytes

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import ValidationError

from client.connection import NotYetConfirmed, TemporalUnavailable
from client.requests import current_status, submit, tell_applied_again
from client.requests import submission_id as onboarding_id_of
from infra.links import status_path, status_token_valid
from models.lifecycle import STAGES
from models.personal_data import ERASED
from models.requests import IDEMPOTENCY_KEY, Locale, OnboardingRequest
from stores.reapply import ApplyRefused, check_may_apply
from web.dependencies import ClientDep, SecretDep, SettingsDep, StoresDep, TemporalDep, read
from web.i18n import N_, page_locale, translator
from web.identifiers import ONBOARDING_ID
from web.protection import SubmitLimited
from web.templating import not_confirmed, render

router = APIRouter(include_in_schema=False)
FAVICON = Path(__file__).resolve().parent.parent / "static" / "favicon.svg"

FIELDS = tuple(OnboardingRequest.model_fields)
# Pydantic's messages are English and written for developers: the form says these
# instead, by the error's type ...
FORM_ERRORS = {
    "missing": N_("Please fill this in."),
    "string_too_short": N_("Please fill this in."),
    "string_too_long": N_("Please shorten this to at most %(max_length)s characters."),
    "literal_error": N_("Please choose one of the languages offered."),
}
# ... and, for a `value_error` (a field's own rule in models.requests), by field.
PHONE = N_("Please enter a phone number: digits, spaces and + ( ) - . / only.")
NOT_VALID = {
    "email": N_("Please enter an email address, such as name@company.example."),
    "phone": PHONE,
    "company_phone": PHONE,
    "website": N_("Please enter a web address, such as https://contoso.example."),
    "comments": N_("Please leave out control characters."),
}
ONE_LINE = N_("Please write this on one line, without control characters.")
NOT_RIGHT = N_("Please check this.")
NOT_UTF8 = N_("This is not valid UTF-8 text.")


@router.get("/favicon.ico")
async def favicon() -> Response:
    """The site's icon, where browsers look for it whatever the page links."""
    return FileResponse(FAVICON, media_type="image/svg+xml")


@router.get("/")
async def landing(request: Request) -> Response:
    """The B2B site's home page."""
    return render(request, "landing.html", locale=page_locale(request))


@router.get("/apply")
async def application_form(request: Request) -> Response:
    """The onboarding form, with a fresh submission id against double submits."""
    return render(
        request,
        "apply.html",
        locale=page_locale(request),
        values={},
        errors={},
        submission_id=uuid.uuid4().hex,
    )


@router.post("/apply", dependencies=[SubmitLimited])
async def apply(
    request: Request,
    client: ClientDep,
    stores: StoresDep,
    settings: SettingsDep,
    secret: SecretDep,
) -> Response:
    """Submit the form: the same submission id (a double click, a resubmit) makes one request.

    An email the re-apply policy refuses gets a page that says why, and nothing is made.
    """
    locale = page_locale(request)
    # Read whole first: the form parser would hide bytes that are not UTF-8.
    errors = _not_utf8(request.headers.get("content-type", ""), await request.body(), locale)
    form = await request.form()
    values = {name: str(form.get(name) or "") for name in FIELDS}
    submission_id = str(form.get("submission_id") or "")
    if not re.match(IDEMPOTENCY_KEY, submission_id):
        submission_id = uuid.uuid4().hex
    if not errors:
        try:
            application = OnboardingRequest(
                **{name: value for name, value in values.items() if value.strip()}
            )
        except ValidationError as err:
            errors = field_errors(err, locale)
    if errors:
        return render(
            request,
            "apply.html",
            status_code=422,
            locale=locale,
            values=values,
            errors=errors,
            submission_id=submission_id,
        )
    key = f"form:{submission_id}"
    try:
        await read(
            check_may_apply,
            stores.commerce,
            application.email,
            settings.reapply_cooldown,
            settings.b2b_site_url,
            submission=onboarding_id_of(key, application.email),
        )
    except ApplyRefused as refused:
        # The duplicate's answer: the address on record is told what it may do.
        await tell_applied_again(client, settings, refused.onboarding_id, refused.may_apply_from)
        return RedirectResponse("/apply/already-open", status_code=303)
    try:
        submitted = await submit(client, application, settings, idempotency_key=key)
    except NotYetConfirmed:
        # The same submission id on "Check again": the requester gets their link then.
        typed = {name: value for name, value in values.items() if value}
        return not_confirmed(
            request,
            N_("We have your request, but our system has not confirmed it yet."),
            what="request",
            fields={**typed, "submission_id": submission_id},
            locale=locale,
        )
    if submitted.duplicate:
        # Neither the link nor the reference: whoever knows an email must not find its
        # request. The link is emailed to the address on record instead.
        return RedirectResponse("/apply/already-open", status_code=303)
    path = status_path(secret, submitted.onboarding_id)
    return RedirectResponse(f"{path}/submitted", status_code=303)


@router.get("/apply/already-open")
async def already_open(request: Request) -> Response:
    """The email already has an undecided request: the API's words, and nothing more."""
    return render(request, "already_open.html", locale=page_locale(request))


def _not_utf8(content_type: str, body: bytes, locale: Locale) -> dict[str, str]:
    """The field whose bytes are not UTF-8, which the form parser would read as U+FFFD.

    The API refuses such a body; the form must too, rather than keep a mangled name.
    """
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return {}
    for pair in body.split(b"&"):
        name, _, value = pair.partition(b"=")
        try:
            unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            field = unquote_plus(name.decode("latin-1"))
            return {field if field in FIELDS else "form": translator(locale)(NOT_UTF8)}
    return {}


def field_errors(
    err: ValidationError, locale: Locale, fields: tuple[str, ...] = FIELDS
) -> dict[str, str]:
    """A form's errors by field, in words for people, in the page's language."""
    _ = translator(locale)
    errors: dict[str, str] = {}
    for error in err.errors():
        field = str(error["loc"][0]) if error["loc"] else "form"
        if error["type"] == "value_error":
            message = _(NOT_VALID.get(field, ONE_LINE))
        else:
            message = _(FORM_ERRORS.get(error["type"], NOT_RIGHT), **error.get("ctx", {}))
        errors.setdefault(field if field in fields else "form", message)
    return errors


@router.get("/requests/{onboarding_id}/{token}/submitted")
async def confirmation(
    request: Request,
    onboarding_id: str,
    token: str,
    secret: SecretDep,
    temporal: TemporalDep,
    stores: StoresDep,
) -> Response:
    """Thank-you page: the reference, and the link to follow the request."""
    _check_link(secret, onboarding_id, token)
    try:
        preferred: str | None = (await current_status(temporal, stores, onboarding_id)).locale
    except TemporalUnavailable:
        # The request is accepted: thank the requester even while Temporal is out of reach.
        preferred = None
    return render(
        request,
        "confirmation.html",
        locale=page_locale(request, preferred),
        onboarding_id=onboarding_id,
        status_url=status_path(secret, onboarding_id),
    )


@router.get("/requests/{onboarding_id}/{token}")
async def request_status(
    request: Request,
    onboarding_id: str,
    token: str,
    secret: SecretDep,
    temporal: TemporalDep,
    stores: StoresDep,
) -> Response:
    """The requester's view: where the request stands and since when."""
    _check_link(secret, onboarding_id, token)
    current = await current_status(temporal, stores, onboarding_id)
    locale = page_locale(request, current.locale)
    _ = translator(locale)
    return render(
        request,
        "request_status.html",
        locale=locale,
        status=current,
        words=_(STAGES[current.stage].requester_words),
        stage_name=_(STAGES[current.stage].requester_name),
        erased=current.email == ERASED,
    )


def _check_link(secret: bytes, onboarding_id: str, token: str) -> None:
    if not ONBOARDING_ID.match(onboarding_id) or not status_token_valid(
        secret, onboarding_id, token
    ):
        raise HTTPException(404, N_("There is no such request. Check the link you were given."))
