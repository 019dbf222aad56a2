"""The codec endpoint: Temporal's codec-server protocol, so staff read histories in clear.

The Temporal server holds only ciphertext (`infra/encryption.py`); the Temporal UI (and the
`temporal` CLI, `--codec-endpoint`) post a history's payloads here, `POST /codec/decode`
with `{"payloads": [{"metadata": {…}, "data": "…"}]}` (protobuf's JSON: base64 bytes),
and show what comes back. `POST /codec/encode` encrypts what the UI sends (a signal's
input typed there) under the master key, for Commerce admins only, and marks it inside
the ciphertext as a person's: a workflow refuses it as an Update's input, as it refuses
one sent in clear (client.converter.PayloadConverter). Acting on a request is the web app's and
the command line's, which check who may.

Only signed-in staff: the UI sends the browser's cookies when its codec setting
"Include cross-origin credentials" is on (a staff session from `/staff/signin`, on the
same site as the UI), the CLI a staff API token (`--codec-auth "Bearer <token>"`). No
credentials: 401; a partner's session or token: 403. The UI calls from its own origin
(`TEMPORAL_UI_URL`), which alone is allowed by CORS, with credentials.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf import json_format
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from infra import encryption
from models.lifecycle import Role
from stores import accounts
from web.auth import User, api_user, partner_session, session_user

PREFIX = "/codec"
router = APIRouter(prefix=PREFIX, include_in_schema=False)
# What the UI sends: its JSON body, the namespace, and (when configured) a bearer token.
ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"
PREFLIGHT_MAX_AGE = "600"
# Bytes in protobuf's JSON: base64, standard or URL-safe, padded or not.
BASE64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, as a browser's Origin header writes it."""
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest.split('/', 1)[0].lower()}"


class CodecCors:
    """CORS for the codec endpoint alone: the Temporal UI's origin, with credentials.

    A preflight from that origin is answered here; every answer to it (errors too) names
    it, so the UI can read a 401. Any other origin gets no CORS headers, so its page can
    read nothing, and its requests are refused (`staff`) before anything is decoded.
    """

    def __init__(self, app: ASGIApp, ui_origin: str) -> None:
        self.app = app
        self.ui_origin = ui_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin != self.ui_origin:
            await self.app(scope, receive, send)
            return
        allow = [
            (b"access-control-allow-origin", origin.encode()),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        ]
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
            preflight = Response(status_code=204)
            preflight.raw_headers.extend(
                [
                    *allow,
                    (b"access-control-allow-methods", b"POST, OPTIONS"),
                    (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                    (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
                ]
            )
            await preflight(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *allow]
            await send(message)

        await self.app(scope, receive, with_cors)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def staff(request: Request) -> User:
    """The signed-in staff member (session cookie or API token); 401 for nobody, 403 for
    a partner, and for a browser page of any origin but the UI's and the site's own."""
    origin = request.headers.get("origin")
    settings = request.app.state.settings
    if origin is not None and origin not in (
        origin_of(settings.temporal_ui_url),
        origin_of(settings.b2b_site_url),
    ):
        raise HTTPException(403, "the codec answers the Temporal UI's pages only")
    user = session_user(request)
    if user is not None:
        return user
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        token = token.strip()
        if accounts.partner_session_account(request.app.state.stores.commerce, token):
            raise HTTPException(403, "the codec is for staff")
        return api_user(request, HTTPAuthorizationCredentials(scheme="Bearer", credentials=token))
    if partner_session(request) is not None:
        raise HTTPException(403, "the codec is for staff")
    raise HTTPException(
        401,
        "sign in as staff (/staff/signin) and let the Temporal UI include credentials, or"
        " send Authorization: Bearer <token>",
        {"WWW-Authenticate": "Bearer"},
    )


async def _payloads(request: Request) -> list[Payload]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(400, "send JSON: Content-Type: application/json")
    try:
        sent = json.loads(await request.body())
        if not isinstance(sent, dict) or not isinstance(sent.get("payloads"), list):
            raise ValueError("no list of payloads")
        for payload in sent["payloads"]:
            metadata = payload.get("metadata", {}) if isinstance(payload, dict) else None
            if not isinstance(metadata, dict):
                raise ValueError("a payload is not an object with a metadata object")
            # protobuf's JSON reader skips what is not base64; a garbled payload is refused.
            for value in (payload.get("data", ""), *metadata.values()):
                if not isinstance(value, str) or not BASE64.match(value):
                    raise ValueError("a payload's bytes are not base64")
        body = json_format.ParseDict(sent, Payloads())
    except (json_format.ParseError, UnicodeDecodeError, ValueError, TypeError, KeyError) as err:
        # Not chained: the app reads a chained ValueError as a JSON body it could not parse.
        raise HTTPException(
            400, f'not {{"payloads": [...]}} as Temporal writes it: {err}'
        ) from None
    return list(body.payloads)


def _as_sent(payload: Payload) -> Payload:
    """The payload as its sender wrote it, without the codec's note of where it came from."""
    if encryption.ARRIVED in payload.metadata:
        del payload.metadata[encryption.ARRIVED]
    return payload


def _answer(payloads: list[Payload]) -> JSONResponse:
    content: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=payloads))
    return JSONResponse({"payloads": content.get("payloads", [])})


@router.post("/decode")
async def decode(request: Request) -> Response:
    """Payloads in clear, for the Temporal UI; an erased request's stay as they are."""
    staff(request)
    codec: encryption.EncryptionCodec = request.app.state.codec.reading_fresh()
    decoded = []
    for payload in await _payloads(request):
        try:
            decoded += [_as_sent(each) for each in await codec.decode([payload])]
        except encryption.RequestErased:
            decoded.append(payload)
        except encryption.UnreadablePayload as err:
            raise HTTPException(400, str(err)) from None
        except encryption.KeyStoreUnavailable as err:
            raise HTTPException(503, str(err)) from None
    return _answer(decoded)


@router.post("/encode")
async def encode(request: Request) -> Response:
    """Payloads encrypted under the master key for a Commerce admin (what the UI's forms
    send a workflow), marked as a person's: no workflow takes them as an Update."""
    if staff(request).role is not Role.COMMERCE_ADMIN:
        raise HTTPException(403, "encoding is for Commerce admins; decoding for all staff")
    codec: encryption.EncryptionCodec = request.app.state.codec
    return _answer(await codec.encode_for_a_person(await _payloads(request)))
