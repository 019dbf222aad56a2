"""Every workflow a worker of this build runs, and how: what a replay of its histories
checks too (the replay test, and `deploy move`)."""

from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner

from workflows.dual_write import DualWriteWorkflow
from workflows.notifications import NotificationResendWorkflow
from workflows.onboarding import OnboardingWorkflow
from workflows.partner_user import PartnerUserWorkflow
from workflows.personal_data import PersonalDataWorkflow

WORKFLOWS = [
    OnboardingWorkflow,
    PartnerUserWorkflow,
    PersonalDataWorkflow,
    NotificationResendWorkflow,
    DualWriteWorkflow,
]


def workflow_runner() -> WorkflowRunner:
    """Unsandboxed: the worker, the replay test and `deploy move` all run the workflows so.

    The SDK's sandbox cost the worker a quarter of its CPU per won onboarding (`make
    bench-sandbox`, bench/results/sandbox.md): it computes each payload's serialization
    context inside itself, enters itself for every activation, and imports a workflow's
    module afresh for every instance; passing our modules through saves only the last.
    What it guarded is checked instead, before a change merges: the workflows' code, and
    what of ours they import, by tests/test_workflow_determinism.py (no clock, randomness,
    environment, I/O, threads, ORM, no module state kept between runs), and every
    recorded version's histories by tests/test_replay.py (docs/performance.md).
    """
    return UnsandboxedWorkflowRunner()
