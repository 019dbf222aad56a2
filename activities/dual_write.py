"""Dual-write's one activity: apply the next batch of one store's changes to the other.

It long-polls: with nothing to send it waits (heartbeating) up to the input's wait for a
first change, so an idle sync writes no history and a change crosses within a poll.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine
from temporalio import activity

from models.dual_write import SyncBatchInput, SyncBatchResult
from stores import dual_write

# How often an idle batch looks at its outbox: a change's lag is at most this, plus the
# apply. One indexed read of the pending changes' first rows.
POLL_SECONDS = 0.1


class DualWriteActivities:
    def __init__(self, sales: Engine, commerce: Engine) -> None:
        self.engines = dual_write.engines_of(sales, commerce)

    @activity.defn
    def sync_batch(self, input: SyncBatchInput) -> SyncBatchResult:
        """Apply the next changes in order; the store that is down makes it retry."""
        source = input.direction.source
        deadline = time.monotonic() + input.wait_seconds
        changes = dual_write.pending_changes(self.engines[source], source, input.limit)
        while not changes and time.monotonic() < deadline:
            activity.heartbeat()
            if activity.is_cancelled():
                return SyncBatchResult()
            time.sleep(POLL_SECONDS)
            changes = dual_write.pending_changes(self.engines[source], source, input.limit)
        return dual_write.sync_batch(self.engines, input.direction, changes)
