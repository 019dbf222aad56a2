"""The product's worker (`worker.py`) with the workflow runner `bench.sandbox` measures.

    python -m bench.sandbox_worker RUNNER

The product chooses its runner in one place, `workflows.registry.workflow_runner`; this
process runs `worker.run()` with that choice replaced by one of `RUNNERS`, so the
bench can compare them in one run, whichever the product has chosen.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# What the sandbox passed through before issue 22 (workflows/registry.py then): the
# libraries and our modules the workflows import, but not the workflow modules.
PASSTHROUGH_BEFORE = (
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
    "links",
)


def _sandbox() -> WorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_BEFORE)
    )


def _sandbox_passthrough() -> WorkflowRunner:
    # `workflows` too: the workflow modules are imported once per worker, not per instance
    # (the SDK reloads a workflow's own module only when it is not passed through).
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            *PASSTHROUGH_BEFORE, "workflows"
        )
    )


# name: (what it is, the runner). The first is the one the others are divided by.
RUNNERS: dict[str, tuple[str, Callable[[], WorkflowRunner]]] = {
    "sandbox": (
        "the sandbox as before issue 22: pydantic, SQLAlchemy, `models`, `activities`, "
        "`stores`… passed through, each workflow's own module imported afresh per instance",
        _sandbox,
    ),
    "sandbox-passthrough": (
        "the sandbox with the `workflows` package passed through as well: nothing of ours "
        "imported per instance; still entered per activation and per payload visit",
        _sandbox_passthrough,
    ),
    "unsandboxed": ("`UnsandboxedWorkflowRunner`", UnsandboxedWorkflowRunner),
}


def main() -> None:
    import worker  # after the runner is chosen: it is read as the worker is built

    worker.workflow_runner = RUNNERS[sys.argv[1]][1]  # type: ignore[assignment]
    worker.run()


if __name__ == "__main__":
    main()
