"""A reference's worker process: default settings, until SIGINT or SIGTERM.

`python -m bench.naive ADDRESS TASK_QUEUE` and `python -m bench.lean ADDRESS TASK_QUEUE`
run theirs through `serve`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner


def serve(
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]],
    data_converter: DataConverter | None = None,
    runner: WorkflowRunner | None = None,
) -> None:
    """`data_converter` and `runner`: the SDK's defaults unless given (the lean references
    take the product's runner, so that they differ from it only in shape and I/O; the lean
    I/O reference takes its converter too, with the codec)."""
    address, task_queue = sys.argv[1], sys.argv[2]
    asyncio.run(
        _run(
            address,
            task_queue,
            workflows,
            activities,
            data_converter or DataConverter.default,
            runner or SandboxedWorkflowRunner(),
        )
    )


async def _run(
    address: str,
    task_queue: str,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]],
    data_converter: DataConverter,
    runner: WorkflowRunner,
) -> None:
    client = await Client.connect(address, data_converter=data_converter)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities,
        workflow_runner=runner,
    ):
        await stop.wait()
