"""The worker refuses to start without the search attributes admins filter on."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client

from tests.conftest import free_port
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


async def test_a_store_that_cannot_be_opened_stops_the_worker_with_one_line(
    client: Client,
) -> None:
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "worker.py", cwd=Path(__file__).resolve().parent.parent,
        env={
            **os.environ,
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "SALES_DATABASE_URL": unreachable,
        },
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 1
    lines = [line for line in err.decode().splitlines() if line.startswith("worker:")]
    assert len(lines) == 1 and "cannot open the stores" in lines[0], err.decode()
    assert "Traceback" not in err.decode()
