"""Histories recorded from the scenarios replay against today's workflow code.

A change that would break running workflows (non-determinism) fails here. To record
anew after an intended, versioned change: `RECORD_HISTORIES=1 make test`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from client import DATA_CONVERTER
from worker import WORKFLOWS, workflow_runner

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_histories_for_every_path() -> None:
    names = {path.stem for path in HISTORIES}
    assert {
        "won",
        "cancelled",
        "lost",
        "integration_off_approved",
        "integration_off_rejected",
        "applicant",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=DATA_CONVERTER,
        workflow_runner=workflow_runner(),
    )
    await replayer.replay_workflow(history)
