"""The lean reference: our process in the fewest activations the engine allows, no I/O.

One workflow per request. Submit is an Update-with-Start that answers once its write
ran; qualify, then won, are Updates (with a validator, as the product's decisions have)
that answer once theirs ran. Each stage's writes are ONE no-op local activity, the
shape the product is moving to; after won, one regular no-op activity stands for the
email, and the workflow completes when it is done. Run as the product's workflows are
(`workflows.registry.workflow_runner`: unsandboxed, so the product is held to the same
engine), default worker settings otherwise: beside the naive ceiling
(bench/naive.py), what a product of this shape could reach on this machine.
`python -m bench.lean ADDRESS TASK_QUEUE` runs its worker.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

from bench.reference_worker import serve

# Stage → the decision it takes, and the stage that decision leads to.
NEXT = {"lead_open": ("qualify", "opportunity_open"), "opportunity_open": ("won", "won")}
TIMEOUT = timedelta(seconds=30)


@activity.defn
async def write(stage: str) -> str:
    """A stage's store writes (a local activity), with no store."""
    return stage


@activity.defn
async def email(stage: str) -> str:
    """The email after won (a regular activity), with no mail server."""
    return stage


@workflow.defn
class LeanWorkflow:
    def __init__(self) -> None:
        self._stage = "new"

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._stage == "won")
        await workflow.execute_activity(email, self._stage, start_to_close_timeout=TIMEOUT)
        return self._stage

    @workflow.update
    async def submit(self) -> str:
        """Answers once the request's writes ran."""
        await workflow.execute_local_activity(write, "submit", start_to_close_timeout=TIMEOUT)
        self._stage = "lead_open"
        return self._stage

    @workflow.update
    async def decide(self, action: str) -> str:
        """Answers once the decision's writes ran."""
        then = NEXT[self._stage][1]
        self._stage = f"applying {action}"  # a second decision meanwhile is refused
        await workflow.execute_local_activity(write, action, start_to_close_timeout=TIMEOUT)
        self._stage = then
        return self._stage

    @decide.validator
    def _validate_decide(self, action: str) -> None:
        allowed = NEXT.get(self._stage)
        if allowed is None or allowed[0] != action:
            raise ValueError(f"{action} is not allowed while {self._stage}")


if __name__ == "__main__":
    from workflows.registry import workflow_runner

    serve([LeanWorkflow], [write, email], runner=workflow_runner())
