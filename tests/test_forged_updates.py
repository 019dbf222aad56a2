"""An Update the product did not send is refused, and such a signal ignored: one written in
clear by the `temporal` CLI without the codec, or encrypted through the codec endpoint
(which only Commerce admins may call). Both are the `temporal` CLI's ways of acting on a
request past the web app's sign-in and roles, naming any actor."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.worker import Replayer

from client.converter import UPDATE_NOT_FROM_THE_PRODUCT, data_converter
from client.requests import decide, hold
from models.ids import onboarding_workflow_id
from models.lifecycle import Action, Stage
from models.status import Decision, Hold, OnboardingStatus
from settings import Settings
from stores import Stores
from tests.conftest import ADMIN, REP, bearer
from tests.scenario import submitted
from tests.test_replay import markers
from workflows.interceptors import IGNORE_FORGED_SIGNALS, INTERCEPTORS
from workflows.onboarding import OnboardingWorkflow
from workflows.registry import WORKFLOWS, workflow_runner

pytestmark = pytest.mark.usefixtures("worker")
JSON = {"Content-Type": "application/json"}


class ThroughTheCodecEndpoint(PayloadCodec):
    """What `temporal … --codec-endpoint … --codec-auth` does: the web app encodes."""

    def __init__(self, web: httpx.AsyncClient, user: tuple[str, str, str]) -> None:
        self.web = web
        self.user = user

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self._call("/codec/encode", payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self._call("/codec/decode", payloads)

    async def _call(self, path: str, payloads: Sequence[Payload]) -> list[Payload]:
        body = json_format.MessageToDict(Payloads(payloads=payloads))
        answer = await self.web.post(
            path, content=json.dumps(body), headers={**JSON, **bearer(self.user)}
        )
        answer.raise_for_status()
        return list(json_format.ParseDict(answer.json(), Payloads()).payloads)


async def forged_hold(client: Client, current: OnboardingStatus) -> WorkflowUpdateFailedError:
    handle = client.get_workflow_handle(onboarding_workflow_id(current.onboarding_id))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            OnboardingWorkflow.hold, Hold(actor="anna", note="held by anna, or so it says")
        )
    return refused.value


async def test_a_hold_sent_in_clear_is_refused_and_holds_nothing(
    client: Client, settings: Settings
) -> None:
    current = await submitted(client, settings)
    in_clear = Client(
        client.service_client, namespace=client.namespace, data_converter=pydantic_data_converter
    )

    refused = await forged_hold(in_clear, current)

    assert getattr(refused.cause, "type", None) == UPDATE_NOT_FROM_THE_PRODUCT
    status = await client.get_workflow_handle(onboarding_workflow_id(current.onboarding_id)).query(
        OnboardingWorkflow.status
    )
    assert status.held is None
    # The product's own hold, through its client, still holds.
    held = await hold(client, current.onboarding_id, actor="rep:mario", note="waiting for a call")
    assert held.held is not None and held.held.by == "rep:mario"


async def test_a_hold_encrypted_by_the_codec_endpoint_is_refused(
    client: Client, settings: Settings, web: httpx.AsyncClient
) -> None:
    current = await submitted(client, settings)
    through_endpoint = Client(
        client.service_client,
        namespace=client.namespace,
        data_converter=DataConverter(
            payload_converter_class=pydantic_data_converter.payload_converter_class,
            payload_codec=ThroughTheCodecEndpoint(web, ADMIN),
        ),
    )

    refused = await forged_hold(through_endpoint, current)

    assert getattr(refused.cause, "type", None) == UPDATE_NOT_FROM_THE_PRODUCT
    status = await client.get_workflow_handle(onboarding_workflow_id(current.onboarding_id)).query(
        OnboardingWorkflow.status
    )
    assert status.held is None


async def test_only_a_commerce_admin_may_encode(web: httpx.AsyncClient) -> None:
    sent = {
        "payloads": [
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(b'"Giulia"').decode(),
            }
        ]
    }

    by_rep = await web.post(
        "/codec/encode", content=json.dumps(sent), headers={**JSON, **bearer(REP)}
    )
    by_admin = await web.post(
        "/codec/encode", content=json.dumps(sent), headers={**JSON, **bearer(ADMIN)}
    )
    read_back = await web.post(
        "/codec/decode", content=json.dumps(by_admin.json()), headers={**JSON, **bearer(REP)}
    )

    assert by_rep.status_code == 403 and "Commerce admins" in by_rep.json()["detail"]
    assert by_admin.status_code == 200
    # Decoded as it was sent: the mark that refuses it as an Update stays inside.
    assert read_back.json() == sent


async def test_a_decision_signalled_in_clear_is_ignored_and_its_history_replays(
    client: Client, settings: Settings, stores: Stores
) -> None:
    current = await submitted(client, settings)
    handle = client.get_workflow_handle(onboarding_workflow_id(current.onboarding_id))
    in_clear = Client(
        client.service_client, namespace=client.namespace, data_converter=pydantic_data_converter
    )

    await in_clear.get_workflow_handle(handle.id).signal(
        OnboardingWorkflow.decision_signal, Decision(action=Action.CANCEL, actor="rep:mario")
    )
    # The product's own decision after it: applied, so the forged one was seen first.
    qualified = await decide(client, current.onboarding_id, Action.QUALIFY, actor="rep:mario")

    assert qualified.stage is Stage.OPPORTUNITY_OPEN
    history = await handle.fetch_history()
    assert f"patch:{IGNORE_FORGED_SIGNALS}" in markers(history.to_json())
    await Replayer(
        workflows=WORKFLOWS,
        data_converter=data_converter(settings, stores.commerce),
        workflow_runner=workflow_runner(),
        interceptors=INTERCEPTORS,
    ).replay_workflow(history)
