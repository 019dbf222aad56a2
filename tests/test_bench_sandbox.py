"""`make bench-sandbox`'s own code: the sandbox's entry points found in a profile, the
ratios within a round, and the runners it swaps into the product's worker."""

from __future__ import annotations

from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bench import sandbox
from bench.sandbox_worker import RUNNERS


def test_the_sandbox_s_entry_points_are_counted_in_stack() -> None:
    site = "/v/lib/python3.11/site-packages"
    runner = f"{site}/temporalio/worker/workflow_sandbox/_runner.py"
    visit = f"visit ({site}/temporalio/worker/_workflow.py:1)"
    raw = "\n".join(
        [
            f"{visit};_Instance.get_serialization_context ({runner}:210);"
            f"_Instance._run_code ({runner}:185) 3",
            f"act ({site}/temporalio/worker/_workflow.py:2);_Instance.activate ({runner}:160) 1",
            f"new ({site}/temporalio/worker/_workflow.py:3);_Instance.__init__ ({runner}:120);"
            f"_Instance._run_code ({runner}:185) 2",
            f"send ({site}/aiosmtplib/smtp.py:9) 4",
        ]
    )
    assert sandbox.sandbox_frames(raw) == {
        "serialization context, per payload visit": 30.0,
        "activation, entered through the sandbox": 10.0,
        "new workflow instance (its module imported afresh)": 20.0,
    }


def test_each_runner_is_divided_by_the_first_in_its_own_round() -> None:
    def phase(runner: str, round_: int, cpu: float, rate: float) -> dict[str, object]:
        return {"runner": runner, "round": round_, "worker_cpu_ms_each": cpu, "per_second": rate}

    results = {
        "phases": [
            phase("sandbox", 1, 60.0, 10.0),
            phase("sandbox-passthrough", 1, 54.0, 10.0),
            phase("unsandboxed", 1, 42.0, 12.0),
            # a busier round: slower for all, the ratios alike
            phase("sandbox", 2, 80.0, 5.0),
            phase("sandbox-passthrough", 2, 72.0, 5.0),
            phase("unsandboxed", 2, 56.0, 6.0),
            # the profiled round (0) is not in the ratios
            phase("unsandboxed", 0, 1.0, 1.0),
        ]
    }
    ratios = sandbox.ratios(results)
    assert ratios["sandbox"]["worker_cpu_ratio"] == 1.0
    assert ratios["sandbox-passthrough"]["worker_cpu_ratio"] == 0.9
    assert ratios["unsandboxed"] == {
        "worker_cpu_ms_each": [42.0, 56.0],
        "per_second": [12.0, 6.0],
        "worker_cpu_ratio": 0.7,
        "per_second_ratio": 1.2,
    }


def test_the_runners_compared() -> None:
    built = {name: make() for name, (_, make) in RUNNERS.items()}
    assert list(built) == ["sandbox", "sandbox-passthrough", "unsandboxed"]
    assert isinstance(built["unsandboxed"], UnsandboxedWorkflowRunner)
    before, passthrough = built["sandbox"], built["sandbox-passthrough"]
    assert isinstance(before, SandboxedWorkflowRunner)
    assert isinstance(passthrough, SandboxedWorkflowRunner)
    assert "workflows" not in before.restrictions.passthrough_modules
    assert "models" in before.restrictions.passthrough_modules
    assert (
        passthrough.restrictions.passthrough_modules - before.restrictions.passthrough_modules
        == {"workflows"}
    )
