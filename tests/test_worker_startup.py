"""The worker refuses to start without the search attributes admins filter on."""

from __future__ import annotations

import uuid

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client

from worker import MissingSearchAttributes, check_search_attributes


async def test_the_check_passes_where_they_are_registered(client: Client) -> None:
    await check_search_attributes(client, client.namespace)


async def test_the_check_names_every_missing_attribute(client: Client) -> None:
    namespace = f"bare-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    with pytest.raises(MissingSearchAttributes) as missing:
        await check_search_attributes(client, namespace)
    for name in ("OnboardingStage", "CompanyName", "OnboardingId", "ContactEmail"):
        assert name in str(missing.value)
    assert "--search-attribute OnboardingStage=Keyword" in str(missing.value)
