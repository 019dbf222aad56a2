"""Every workflow a worker of this build runs, and how: what a replay of its histories
checks too (the replay test, and `deploy move`)."""

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workflows.applicant import ApplicantWorkflow
from workflows.dual_write import DualWriteWorkflow
from workflows.notifications import NotificationResendWorkflow
from workflows.onboarding import OnboardingWorkflow
from workflows.partner_user import PartnerUserWorkflow
from workflows.personal_data import PersonalDataWorkflow

WORKFLOWS = [
    OnboardingWorkflow,
    ApplicantWorkflow,
    PartnerUserWorkflow,
    PersonalDataWorkflow,
    NotificationResendWorkflow,
    DualWriteWorkflow,
]

# Modules every workflow run would otherwise import afresh in its sandbox: deterministic,
# free of state a workflow could change, and heavy to import (pydantic builds every
# model's validator on import). Shared, they are imported once per worker. The sandbox
# itself stays on: the workflow modules are still loaded per run, and still checked.
PASSTHROUGH = (
    "pydantic",
    "pydantic_core",
    "email_validator",
    "idna",
    "dns",
    "sqlalchemy",
    "sqlmodel",
    "models",
    "activities",
    "stores",
    "settings",
    "infra.links",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )
