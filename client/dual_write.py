"""Dual-write's side of the client: start the two sync workflows, pause, resume, read them.

The web app, the CLI and the worker call these; nothing else talks to the sync workflows.
"""

from __future__ import annotations

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError

from models.dual_write import Direction, DualWriteInput, PauseInput, SyncState
from workflows.dual_write import DualWriteWorkflow


class SyncRefused(Exception):
    """Pause while paused, resume while running: the reason names the state."""


def workflow_id(direction: Direction) -> str:
    return "dual-write-" + direction.value.replace("_", "-")


async def ensure_running(client: Client, task_queue: str) -> None:
    """Start each direction's workflow unless it runs (the worker calls this at start)."""
    for direction in Direction:
        await client.start_workflow(
            DualWriteWorkflow.run,
            DualWriteInput(direction=direction),
            id=workflow_id(direction),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"Dual-write: {direction.source.value} → {direction.target.value}",
        )


async def states(client: Client) -> list[SyncState]:
    return [
        await client.get_workflow_handle(workflow_id(d)).query(DualWriteWorkflow.state)
        for d in Direction
    ]


async def pause(client: Client, actor: str) -> list[SyncState]:
    """Pause both directions; answers once no change is crossing."""
    return await _each(client, "pause", actor)


async def resume(client: Client, actor: str) -> list[SyncState]:
    return await _each(client, "resume", actor)


async def _each(client: Client, update: str, actor: str) -> list[SyncState]:
    """Send the update to each direction not yet in the state it asks for; refused when
    both already are."""
    pausing = update == "pause"
    before = await states(client)
    if all(state.paused == pausing for state in before):
        raise SyncRefused(f"the sync is already {'paused' if pausing else 'running'}")
    done = []
    for state in before:
        handle = client.get_workflow_handle(workflow_id(state.direction))
        if state.paused == pausing:
            done.append(state)
            continue
        try:
            done.append(
                await handle.execute_update(update, PauseInput(actor=actor), result_type=SyncState)
            )
        except WorkflowUpdateFailedError as err:
            # Someone else's pause or resume got there first: the state is as asked.
            if not isinstance(err.cause, ApplicationError):
                raise
            done.append(await handle.query(DualWriteWorkflow.state))
    return done
