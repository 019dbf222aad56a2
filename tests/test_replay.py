"""Histories recorded from the scenarios replay against today's workflow code.

Each folder of `tests/histories/` holds the histories one version of the workflows
recorded (`v1/`: before the received email; `v2-received-email/`: with it, and with the
status link emailed again on a duplicate). All of them replay, so a change that would
break a request started under any of those versions (non-determinism) fails here. After
an intended change to the command sequence, guarded by `workflow.patched`, record into a
new folder: set `RECORDING_VERSION` in `tests/scenario.py`, then
`RECORD_HISTORIES=1 .venv/bin/pytest tests/test_onboarding_lifecycle.py tests/test_duplicates.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.scenario import HISTORIES, RECORDING_VERSION
from worker import WORKFLOWS, workflow_runner

VERSIONS = sorted(folder for folder in HISTORIES.iterdir() if folder.is_dir())
RECORDED = sorted(HISTORIES.glob("*/*.json"))
# Every path of the process, in every version.
PATHS = {
    "won",
    "cancelled",
    "lost",
    "integration_off_approved",
    "integration_off_rejected",
    "applicant",
}
# What the current version records besides: an email applying twice.
DUPLICATES = {"applicant_duplicate", "status_link_reminded"}


def test_every_version_has_histories_for_every_path() -> None:
    assert [folder.name for folder in VERSIONS] == ["v1", RECORDING_VERSION]
    for folder in VERSIONS:
        assert {path.stem for path in folder.glob("*.json")} >= PATHS, folder.name
    current = {path.stem for path in (HISTORIES / RECORDING_VERSION).glob("*.json")}
    assert current >= DUPLICATES


@pytest.mark.parametrize(
    "path", RECORDED, ids=[f"{path.parent.name}/{path.stem}" for path in RECORDED]
)
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    await replayer.replay_workflow(history)
