"""The interceptors a worker of this build runs its workflows with, and a replay of their
histories too (the replay test, and `deploy move`): beside `registry`, the rest of what
a replay needs to run a history as the worker does."""

from __future__ import annotations

from temporalio import workflow
from temporalio.worker import (
    HandleSignalInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from client.converter import arrived_elsewhere

# Names the branch where a signal the product did not send is ignored: histories recorded
# before it replay as they ran. A security fix that had to reach workflows already
# running, so a patch, added by the first versioned release (2d74892). The pinned requests
# of earlier releases finish on that build, but their auto-upgrade partner user and
# retention workflows move onto every later build, this one too: it can go once none
# started before 2d74892's deploy is open (a visibility query on `StartTime`), its branch
# kept unconditional.
IGNORE_FORGED_SIGNALS = "ignore-signals-not-from-the-product"


class _ForgedSignalsIgnored(WorkflowInboundInterceptor):
    """A signal sent in clear (the `temporal` CLI without the codec) or encrypted through
    the codec endpoint is ignored: a signal cannot be refused, and `decision` would
    otherwise decide with any actor typed in. Updates are refused
    (client.converter.PayloadConverter)."""

    async def handle_signal(self, input: HandleSignalInput) -> None:
        if any(arrived_elsewhere(arg) for arg in input.args) and workflow.patched(
            IGNORE_FORGED_SIGNALS
        ):
            workflow.logger.warning(
                "Ignored the %s signal: it did not come from the product", input.signal
            )
            return
        await super().handle_signal(input)


class ForgedSignalsIgnored(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _ForgedSignalsIgnored


# The worker's, and a replayer's that replays as the worker runs.
INTERCEPTORS: list[Interceptor] = [ForgedSignalsIgnored()]
