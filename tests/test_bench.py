"""The benchmark's own code: its report from known figures, and one tiny run end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import io, profile, report
from bench.run import PROFILES, Run


def figures(won_to_email_ms: list[float]) -> dict:
    run = {
        "count": 500,
        "per_second": 30.0,
        "server_cpu_ms_each": 30.0,
        "worker_cpu_ms_each": 30.0,
        "worker_rss_mb": 150.0,
        "other_cpu_share": 0.0,
    }
    many = {"open": 10_000, "submit": run, "worker_rss_mb": 250.0, "server_rss_mb": 900.0}
    return {
        "profile": {"name": "full"},
        "started_at": "2026-11-24T06:00:00+00:00",
        "duration_s": 500.0,
        "machine": {"cpus": 2, "python": "3.11", "temporalio": "1.35", "temporal_cli": "1.9.1"},
        "dev_server_flags": [],
        "failures": {"count": 0, "first": []},
        "ceiling": {
            "throughput": {**run, "per_second": 20.0},
            "unloaded_lifecycle_ms": {"p50": 550.0},
        },
        "lean": {
            "throughput": {**run, "per_second": 40.0},
            "unloaded_lifecycle_ms": {"p50": 300.0},
        },
        "backends": {
            "sqlite": {
                "io": {
                    "count": 200,
                    "cpu_ms_each": 13.0,
                    "cpu_ms_each_by_part": {"record": 3.0, "approval_email": 10.0},
                },
                "lean_io": {"throughput": {**run, "per_second": 25.0}},
                "sync": {
                    "burst": 2000,
                    "caught_up_s": 3.1,
                    "sustained_per_second": 642.0,
                    "half_per_second": 321.0,
                    "offered_per_second": 312.0,
                    "paced": 3120,
                    "lag_ms": {"n": 3120, "p50": 90.0, "p95": 400.0, "p99": 1050.0},
                    "conflicts": 600,
                    "changes": 5120,
                    "lost": 0,
                    "applied_twice": 0,
                },
                "throughput": [run],
                "half_load": {"offered_per_second": 15.0},
                "latency": {
                    "unloaded": {
                        "submit": [100.0],
                        "lead_visible": [150.0],
                        "won_to_email": [30.0],
                    },
                    "half_load": {
                        "submit": [100.0] * 99,
                        "lead_visible": [100.0] * 98 + [240.0, 260.0],
                        "won_to_email": won_to_email_ms,
                    },
                },
                "scale": {
                    "few_open": {
                        **many,
                        "open": 300,
                        "decide": {"per_second": 20.0, "other_cpu_share": 0.0},
                    },
                    "many_open": {**many, "decide": {"per_second": 15.0, "other_cpu_share": 0.0}},
                    "ratio": 0.75,
                },
            }
        },
    }


def test_percentiles_are_values_that_were_measured() -> None:
    values = [float(v) for v in range(1, 101)]
    assert report.percentiles(values) == {"n": 100, "p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert report.percentiles([]) == {"n": 0}


def test_targets_say_which_are_met_and_by_what_figure() -> None:
    results = figures(won_to_email_ms=[40.0] * 100)
    met = {t["target"]: (t["value"], t["met"]) for t in report.targets(results)}
    assert met["sqlite: product ÷ naive ceiling (slowest N)"] == (1.5, True)
    lead = "sqlite: submit → lead visible in Sales, p99 at half load, ms"
    assert met[lead] == (240.0, True)
    assert met["sqlite: worker RSS with 10,000 open, MB"] == (250.0, True)
    assert met["sqlite: deciding 10,000 open ÷ deciding 300"] == (0.75, False)
    assert met["sqlite: product ÷ (lean + product I/O) (slowest N)"] == (1.2, True)
    assert met["sqlite: the product's I/O alone, CPU ms per won onboarding"] == (13.0, False)
    assert met["sqlite: dual-write sustained, changes per second"] == (642.0, True)
    lag = (
        "sqlite: dual-write commit → applied in the other store, p99 at half the sustained rate, ms"
    )
    assert met[lag] == (1050.0, True)
    # A lag measured at less than half the sustained rate does not meet the target.
    results["backends"]["sqlite"]["sync"]["offered_per_second"] = 200.0
    assert {t["target"]: t["met"] for t in report.targets(results)}[lag] is False
    slow = figures(won_to_email_ms=[40.0] * 98 + [400.0, 400.0])
    email = "sqlite: `won` sent → approval email accepted by the SMTP sink, p99 at half load, ms"
    assert {t["target"]: t["met"] for t in report.targets(slow)}[email] is False


def test_the_summary_names_every_target_and_table() -> None:
    results = figures(won_to_email_ms=[40.0] * 100)
    results["targets"] = report.targets(results)
    text = report.markdown(results)
    assert "| sqlite: deciding 10,000 open ÷ deciding 300 | ≥ 0.8 | 0.75 | **no** |" in text
    assert "| naive ceiling, default worker | 500 | 20.0 | 1.00 | 0.50 |" in text
    assert "| lean reference | 500 | 40.0 | 2.00 | 1.00 |" in text
    assert "| product, sqlite | 500 | 30.0 | 1.50 | 0.75 |" in text
    assert "| lean reference ÷ naive ceiling | 2.0 |" in text
    assert (
        "| sqlite: product ÷ lean (slowest N) | 0.75 | sqlite: ≥ 1.2 ÷ naive is ≥ 0.6 ÷ lean |"
        in text
    )
    assert "| sqlite: product ÷ lean_io (slowest N) | 1.2 |" in text
    assert "| lean + product I/O, sqlite | 500 | 25.0 | 1.25 | 0.62 |" in text
    assert "| approval_email | 10.0 |" in text and "| **all** | 13.0 |" in text
    assert "| sqlite | 2000 | 3.1 | 642.0 | 321.0 | 312.0 | 3120 | 90.0 | 400.0 | 1050.0 |" in text
    assert "![latency distributions](latency.png)" in text


def test_the_run_ends_with_each_target_against_its_figure_and_what_falls_short() -> None:
    results = figures(won_to_email_ms=[40.0] * 100)
    results["targets"] = report.targets(results)

    printed = report.budget(results)

    assert "  ok    sqlite: product ÷ naive ceiling (slowest N)" in "\n".join(printed)
    io = "sqlite: the product's I/O alone, CPU ms per won onboarding"
    assert any(line.startswith(f"  SHORT {io}") and "13.0 (goal ≤ 12)" in line for line in printed)
    assert printed[-1] == (
        f"2 of 10 targets short: {io}; sqlite: deciding 10,000 open ÷ deciding 300"
    )


def test_ratios_set_the_product_against_both_references() -> None:
    results = figures(won_to_email_ms=[40.0] * 100)
    assert report.ratios(results) == {
        "lean_over_naive": 2.0,
        "backends": {
            "sqlite": {
                "product_over_naive": 1.5,
                "product_over_lean": 0.75,
                "product_over_lean_io": 1.2,
                "target_over_lean": 0.6,
            }
        },
    }
    del results["lean"]
    assert report.ratios(results)["lean_over_naive"] is None
    assert "| product, sqlite | 500 | 30.0 | 1.50 | — |" in report.markdown(
        {**results, "targets": []}
    )


def test_a_profile_is_summarised_by_where_its_samples_ran() -> None:
    site = "/v/lib/python3.11/site-packages"
    ours = profile.PROJECT
    sandbox = f"run ({site}/temporalio/worker/workflow_sandbox/_runner.py:10)"
    raw = "\n".join(
        [
            # the sandbox's own frame, under the worker: the sandbox
            f"main ({site}/temporalio/worker/_workflow.py:1);{sandbox} 6",
            # pydantic inside the sandbox: pydantic, and in the sandbox's stack
            f"{sandbox};validate ({site}/pydantic/main.py:5) 2",
            # an activity's SQLAlchemy call: SQLAlchemy, in the activities' stack
            f"act ({ours}/activities/sales.py:3);execute ({site}/sqlalchemy/engine/base.py:9) 1",
            # the standard library counts for its caller; with none, "other"
            f"send ({ours}/activities/email.py:7);encode ({profile._STDLIB}json/encoder.py:1) 1",
            f"select ({profile._STDLIB}selectors.py:468) 2",
            "Thread 42 (idle);",  # no frame: left out
        ]
    )
    summary = profile.summarise(raw, seconds=1.0)
    shares = {c["key"]: (c["self_pct"], c["in_stack_pct"]) for c in summary["categories"]}
    assert summary["samples"] == 12
    assert shares["sandbox"] == (50.0, 66.7)
    assert shares["pydantic"] == (16.7, 16.7)
    assert shares["sqlalchemy"] == (8.3, 8.3)
    assert shares["activities"] == (0.0, 8.3)
    assert shares["email"] == (8.3, 8.3)
    assert shares["other"] == (16.7, None)
    assert sum(c["self_pct"] for c in summary["categories"]) == pytest.approx(100, abs=0.2)
    assert summary["gil_busy_share"] == round(12 / profile.RATE, 2)
    assert summary["top_other_files"] == [{"file": "stdlib/selectors.py", "pct": 16.7}]
    table = "\n".join(profile.markdown({"sqlite, N=500": summary}))
    assert "| workflow sandbox (`temporalio/worker/workflow_sandbox`) | 50.0 | 66.7 |" in table


def _can_profile() -> bool:
    """py-spy installed (the bench extra) and allowed to ptrace the worker."""
    scope = Path("/proc/sys/kernel/yama/ptrace_scope")
    allowed = os.geteuid() == 0 or not scope.exists() or scope.read_text().strip() == "0"
    try:
        profile.py_spy_binary()
    except RuntimeError:
        return False
    return allowed


# The benchmark's own run, some 20 s: `make test-faults`.
@pytest.mark.slow
async def test_a_tiny_run_measures_everything_it_reports(tmp_path: Path) -> None:
    # py-spy too where it can run (`make bench` installs it); `make test` runs without.
    py_spy = _can_profile()
    results = await Run("smoke", PROFILES["smoke"], tmp_path, py_spy=py_spy).main()
    json.dumps(results)
    sqlite = results["backends"]["sqlite"]
    assert results["failures"]["count"] == 0
    assert results["ceiling"]["throughput"]["count"] == 10
    assert results["lean"]["throughput"]["count"] == 10
    assert results["ratios"]["lean_over_naive"] > 0
    assert sqlite["throughput"][0]["count"] == 10
    assert sqlite["lean_io"]["throughput"]["count"] == 10
    assert sqlite["io"]["count"] == 5 and sqlite["io"]["emails_each"] == 2
    assert set(sqlite["io"]["cpu_ms_each_by_part"]) == set(io.PARTS)
    assert sqlite["sync"]["burst"] == 50 and sqlite["sync"]["lag_ms"]["n"] > 0
    assert (sqlite["sync"]["lost"], sqlite["sync"]["applied_twice"]) == (0, 0)
    if py_spy:
        summary = sqlite["profiles"]["N=10"]
        assert summary["samples"] > 0
        assert (profile.PROJECT / summary["raw"]).exists() or Path(summary["raw"]).exists()
        assert "## Where the product worker's CPU went (py-spy)" in report.markdown(results)
    assert all(sqlite["latency"]["half_load"][m] for m in report.MEASURES)
    assert sqlite["scale"]["many_open"]["open"] == 20
    assert {t["target"].split(":")[0] for t in results["targets"]} == {"sqlite"}
    pytest.importorskip("matplotlib")
    report.chart(results, tmp_path / "latency.png")
    assert (tmp_path / "latency.png").stat().st_size > 0
