"""The naive ceiling: a bare workflow of the onboarding's shape on a default worker.

2 no-op activities, wait for a signal, 5, wait for a signal, 3: what the engine costs
for ten activity hops and two decisions, with no I/O of our own.
`python -m bench.naive ADDRESS TASK_QUEUE` runs its worker with default settings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import activity, workflow

from bench.reference_worker import serve

SHAPE = (2, 5, 3)


@activity.defn
async def step(n: int) -> int:
    return n


@workflow.defn
class NaiveWorkflow:
    def __init__(self) -> None:
        self._signals = 0

    @workflow.run
    async def run(self) -> int:
        done = 0
        for decisions, steps in enumerate(SHAPE):
            await workflow.wait_condition(self._decided(decisions))
            for _ in range(steps):
                done = await workflow.execute_activity(
                    step, done + 1, start_to_close_timeout=timedelta(seconds=30)
                )
        return done

    @workflow.signal
    def decide(self) -> None:
        self._signals += 1

    def _decided(self, count: int) -> Callable[[], bool]:
        return lambda: self._signals >= count


if __name__ == "__main__":
    serve([NaiveWorkflow], [step])
