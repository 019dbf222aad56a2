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
from temporalio.worker import Worker


def serve(
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]],
    data_converter: DataConverter | None = None,
) -> None:
    """`data_converter`: the SDK's default unless given (the lean I/O reference's is the
    product's, with its codec)."""
    address, task_queue = sys.argv[1], sys.argv[2]
    asyncio.run(
        _run(address, task_queue, workflows, activities, data_converter or DataConverter.default)
    )


async def _run(
    address: str,
    task_queue: str,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]],
    data_converter: DataConverter,
) -> None:
    client = await Client.connect(address, data_converter=data_converter)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(client, task_queue=task_queue, workflows=workflows, activities=activities):
        await stop.wait()
