"""Dual-write: one long-running workflow per direction drains its store's outbox.

Sales → Commerce and Commerce → Sales each run as one workflow (`dual-write-<direction>`),
so a record's changes cross one at a time, in the order they committed. Each turn of the
loop is one batch (`DualWriteActivities.sync_batch`); after a few hundred it continues as
new, so the history stays short however long it runs. Pause is an Update that returns
once no change is crossing; resume another. Changes wait in the outbox meanwhile, never
purged. A worker killed mid-batch loses nothing: the batch runs again, and what it had
applied is found applied (the target row keeps the last change's id).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.dual_write import DualWriteActivities
    from models.dual_write import (
        DualWriteInput,
        PauseInput,
        SyncBatchInput,
        SyncBatchResult,
        SyncState,
    )

# Batches per run before continuing as new: each is a handful of events.
BATCHES_PER_RUN = 500
# A store that is down: the batch retries, never gives up, at most this far apart.
SYNC_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
BATCH_TIMEOUT = timedelta(minutes=2)
BATCH_HEARTBEAT = timedelta(seconds=10)

WORDS = {
    "sales_to_commerce": "Apply Sales' changes to Commerce",
    "commerce_to_sales": "Apply Commerce's changes to Sales",
}


# Auto-upgrade: it never ends (it continues as new), so pinned it would keep an old
# build's workers forever; it moves to the current build on its next task, and a change
# to the commands it issues takes a `workflow.patched` branch.
@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class DualWriteWorkflow:
    @workflow.init
    def __init__(self, input: DualWriteInput) -> None:
        self._state = SyncState(
            direction=input.direction,
            paused=input.paused,
            paused_by=input.paused_by,
            paused_at=input.paused_at,
        )
        self._batch: workflow.ActivityHandle[SyncBatchResult] | None = None

    @workflow.run
    async def run(self, input: DualWriteInput) -> None:
        for _ in range(BATCHES_PER_RUN):
            await workflow.wait_condition(lambda: not self._state.paused)
            await self._drain_once()
            if workflow.info().is_continue_as_new_suggested():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            DualWriteInput(
                direction=self._state.direction,
                paused=self._state.paused,
                paused_by=self._state.paused_by,
                paused_at=self._state.paused_at,
            )
        )

    @workflow.update
    async def pause(self, input: PauseInput) -> SyncState:
        """Stop sending changes (maintenance); answers once none is crossing."""
        self._state = self._state.model_copy(
            update={"paused": True, "paused_by": input.actor, "paused_at": workflow.now()}
        )
        if self._batch is not None:
            self._batch.cancel()
        await workflow.wait_condition(lambda: self._batch is None)
        return self._state

    @pause.validator
    def _may_pause(self, input: PauseInput) -> None:
        if self._state.paused:
            raise ApplicationError("the sync is already paused", type="AlreadyPaused")

    @workflow.update
    def resume(self, input: PauseInput) -> SyncState:
        """Send what waited, in order, and what comes next."""
        self._state = self._state.model_copy(
            update={"paused": False, "paused_by": None, "paused_at": None}
        )
        return self._state

    @resume.validator
    def _may_resume(self, input: PauseInput) -> None:
        if not self._state.paused:
            raise ApplicationError("the sync is not paused", type="NotPaused")

    @workflow.query
    def state(self) -> SyncState:
        return self._state

    # --- mechanics --------------------------------------------------------------------

    async def _drain_once(self) -> None:
        self._batch = workflow.start_activity_method(
            DualWriteActivities.sync_batch,
            SyncBatchInput(direction=self._state.direction),
            summary=WORDS[self._state.direction.value],
            start_to_close_timeout=BATCH_TIMEOUT,
            heartbeat_timeout=BATCH_HEARTBEAT,
            retry_policy=SYNC_RETRY,
            # A pause waits for the batch that is applying to finish: none crosses after.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        try:
            await self._batch
        except ActivityError as err:
            if not isinstance(err.cause, CancelledError):
                raise
        finally:
            self._batch = None
