"""The codec endpoint the Temporal UI reads histories through: staff only, Temporal's
protocol, CORS for the UI's origin alone."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from google.protobuf import json_format
from temporalio.client import Client

from client.converter import data_converter
from client.personal_data import erase_personal_data
from client.requests import decide
from models.ids import onboarding_workflow_id
from models.lifecycle import Action
from settings import Settings
from stores import Stores
from tests.conftest import ADMIN, REP, MailSink, bearer
from tests.scenario import finished, submitted
from tests.test_pages import sign_in
from tests.test_partner_accounts import approved_partner
from tests.test_partner_pages import PASSWORD, activate, approval_link

pytestmark = pytest.mark.usefixtures("worker")
UI = "http://localhost:8233"
JSON = {"Content-Type": "application/json"}


def payloads(*texts: str) -> dict[str, list[dict[str, object]]]:
    return {
        "payloads": [
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(json.dumps(text).encode()).decode(),
            }
            for text in texts
        ]
    }


async def post(
    web: httpx.AsyncClient, path: str, body: object, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await web.post(path, content=content, headers={**JSON, **(headers or {})})


async def test_staff_round_trip_payloads(web: httpx.AsyncClient) -> None:
    sent = payloads("Giulia Rossi", "giulia@contoso.example")

    # Encoding is a Commerce admin's (test_forged_updates); decoding any staff member's.
    encoded = await post(web, "/codec/encode", sent, bearer(ADMIN))
    decoded = await post(web, "/codec/decode", encoded.json(), bearer(REP))

    assert encoded.status_code == 200 and decoded.status_code == 200
    assert b"Giulia" not in base64.b64decode(encoded.json()["payloads"][0]["data"])
    assert decoded.json() == sent


async def test_a_signed_in_staff_session_decodes_a_requests_history(
    web: httpx.AsyncClient, client: Client, settings: Settings
) -> None:
    current = await submitted(client, settings)
    handle = client.get_workflow_handle(onboarding_workflow_id(current.onboarding_id))
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes.input
    body = json_format.MessageToDict(started)
    assert current.email not in json.dumps(body)
    await sign_in(web, REP)

    decoded = await post(web, "/codec/decode", body)

    assert decoded.status_code == 200
    (payload,) = decoded.json()["payloads"]
    assert current.email in base64.b64decode(payload["data"]).decode()


async def test_nobody_gets_401_and_a_partner_403(
    web: httpx.AsyncClient, client: Client, settings: Settings, mail_sink: MailSink
) -> None:
    nobody = await post(web, "/codec/decode", payloads("x"))
    unknown = await post(web, "/codec/decode", payloads("x"), {"Authorization": "Bearer guessed1"})
    assert (nobody.status_code, unknown.status_code) == (401, 401)
    assert "detail" in nobody.json()

    onboarding_id, email = await approved_partner(client, settings)
    assert (await activate(web, approval_link(mail_sink, onboarding_id))).status_code == 303
    as_partner = await post(web, "/codec/decode", payloads("x"))
    signed_in = await web.post("/api/partner/sessions", json={"email": email, "password": PASSWORD})
    token = signed_in.json()["token"]
    by_partner_token = await post(
        web, "/codec/decode", payloads("x"), {"Authorization": f"Bearer {token}"}
    )

    assert (as_partner.status_code, by_partner_token.status_code) == (403, 403)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"payloads": "none"}',
        b'{"payloads": [{"data": "%%%"}]}',
        b'{"nothing": []}',
        # Ciphertext no key here made.
        json.dumps(
            {
                "payloads": [
                    {
                        "metadata": {
                            "encoding": base64.b64encode(b"binary/encrypted").decode(),
                            "encryption-key-id": base64.b64encode(b"test-2").decode(),
                        },
                        "data": base64.b64encode(b"\x00" * 40).decode(),
                    }
                ]
            }
        ).encode(),
    ],
)
async def test_garbage_is_a_400(web: httpx.AsyncClient, body: bytes) -> None:
    answer = await post(web, "/codec/decode", body, bearer(ADMIN))

    assert answer.status_code == 400, answer.text
    assert "detail" in answer.json()


async def test_what_is_not_json_is_a_400(web: httpx.AsyncClient) -> None:
    answer = await web.post(
        "/codec/decode",
        content=json.dumps(payloads("x")),
        headers={"Content-Type": "text/plain", **bearer(ADMIN)},
    )

    assert answer.status_code == 400


async def test_an_erased_requests_payloads_come_back_as_they_were(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores
) -> None:
    """Erased by another process (the command line, another web process): at once."""
    current = await submitted(client, settings)
    await decide(client, current.onboarding_id, Action.CANCEL, actor="rep:mario")
    await finished(client, current)
    history = await client.get_workflow_handle(
        onboarding_workflow_id(current.onboarding_id)
    ).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes.input
    body = json_format.MessageToDict(started)
    before = await post(web, "/codec/decode", body, bearer(ADMIN))
    assert before.status_code == 200 and before.json() != body
    elsewhere = Client(
        client.service_client,
        namespace=client.namespace,
        data_converter=data_converter(settings, stores.commerce),
    )
    await erase_personal_data(elsewhere, stores, current.onboarding_id, "anna", "asked")

    after = await post(web, "/codec/decode", body, bearer(ADMIN))

    assert after.status_code == 200 and after.json() == body


async def test_cors_lets_the_temporal_ui_origin_in_with_credentials(
    web: httpx.AsyncClient,
) -> None:
    preflight = await web.options(
        "/codec/decode",
        headers={
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        },
    )
    refused = await post(web, "/codec/decode", payloads("x"), {"Origin": UI})
    allowed = await post(web, "/codec/decode", payloads("x"), {"Origin": UI, **bearer(REP)})

    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == UI
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "x-namespace" in preflight.headers["access-control-allow-headers"].lower()
    # Errors name the origin too, so the UI can read them.
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == UI
    assert allowed.status_code == 200


async def test_another_origin_is_neither_allowed_nor_answered(web: httpx.AsyncClient) -> None:
    evil = "https://evil.example"
    preflight = await web.options(
        "/codec/decode", headers={"Origin": evil, "Access-Control-Request-Method": "POST"}
    )
    forged = await post(web, "/codec/decode", payloads("x"), {"Origin": evil, **bearer(REP)})

    assert "access-control-allow-origin" not in preflight.headers
    assert forged.status_code == 403
    assert "access-control-allow-origin" not in forged.headers
