"""Histories recorded from the scenarios replay against this build's workflow code.

Each folder of `tests/histories/` holds the histories one version of the workflows
recorded. The pinned workflows' (a request's onboarding workflow) are this build's only:
an earlier build's requests finish on that build's workers, and its histories left this
folder with its code (they replay in that build's commit; docs/changing-the-workflow.md).
The auto-upgrade workflows' (a partner user's, a rejected request's personal data, the
dual-write sync) move to the current build on their next task, so every version's stay
while one that recorded them may run: `v3-partner-account/` on, the partner user
workflow; `v6-personal-data/` on, the personal data workflow; `v7-versioned/`, the
dual-write sync workflows. All of them replay, so a change that would break a workflow
that may be running (non-determinism) fails here.

`v8-emails-in-step/` is this build's: no patch, and each email's first attempt a local
activity in the step's workflow task. After a change to a workflow's commands, record
into a new folder: set `RECORDING_VERSION` in `tests/scenario.py`, then
`RECORD_HISTORIES=1 .venv/bin/pytest tests/test_onboarding_lifecycle.py tests/test_duplicates.py
tests/test_partner_accounts.py tests/test_request_time.py tests/test_retention.py
tests/test_dual_write.py`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from client.converter import data_converter
from settings import Settings
from stores import Stores
from tests.scenario import HISTORIES, RECORDING_VERSION
from workflows.interceptors import INTERCEPTORS
from workflows.registry import WORKFLOWS, workflow_runner

VERSIONS = sorted(folder for folder in HISTORIES.iterdir() if folder.is_dir())
RECORDED = sorted(HISTORIES.glob("*/*.json"))
# Every path of the process.
PATHS = {
    "won",
    "cancelled",
    "lost",
    "integration_off_approved",
    "integration_off_rejected",
}
# Besides: an email applying twice, reminders, an expiry, a hold, a rejected request's
# retention, an erasure while the request's emails were still retrying.
REQUESTS = PATHS | {"status_link_reminded", "reminded", "expired", "held", "retained", "erased"}
# The auto-upgrade workflows', kept from every version that recorded them.
AUTO_UPGRADE = ("partner_user", "personal_data", "dual_write")


def test_this_version_has_histories_for_every_path_and_earlier_ones_only_auto_upgrade() -> None:
    assert VERSIONS[-1].name == RECORDING_VERSION
    current = {path.stem for path in (HISTORIES / RECORDING_VERSION).glob("*.json")}
    assert current >= REQUESTS | {
        "partner_user",
        "personal_data",
        "dual_write_commerce_to_sales",
        "dual_write_sales_to_commerce",
    }
    for folder in VERSIONS[:-1]:
        for path in folder.glob("*.json"):
            assert path.stem.startswith(AUTO_UPGRADE), f"{folder.name}/{path.stem}: pinned"


@pytest.mark.parametrize(
    "path", RECORDED, ids=[f"{path.parent.name}/{path.stem}" for path in RECORDED]
)
async def test_recorded_history_replays(
    path: Path, base_settings: Settings, stores: Stores
) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    replayer = Replayer(
        workflows=WORKFLOWS,
        # The product's own, encrypting: these histories were written in clear, and still
        # read (an applicant's child input is encrypted under a data key of the tests').
        data_converter=data_converter(base_settings, stores.commerce),
        workflow_runner=workflow_runner(),
        interceptors=INTERCEPTORS,
    )
    await replayer.replay_workflow(history)


def markers(history: str) -> list[str]:
    """What a history's markers record, in order: `patch:<id>` or `local:<activity type>`."""
    found = []
    for event in json.loads(history)["events"]:
        if marker := event.get("markerRecordedEventAttributes"):
            kind, field, key = {
                "core_patch": ("patch", "patch-data", "id"),
                "core_local_activity": ("local", "data", "activity_type"),
            }[marker["markerName"]]
            data = json.loads(base64.b64decode(marker["details"][field]["payloads"][0]["data"]))
            found.append(f"{kind}:{data[key]}")
    return found


def test_a_request_records_no_patch_and_its_emails_first_attempt_in_the_step() -> None:
    """A pinned workflow changes with no patch; the received email's first attempt is a
    local activity right after the record step's."""
    requests = [
        path
        for path in (HISTORIES / RECORDING_VERSION).glob("*.json")
        if not path.stem.startswith(AUTO_UPGRADE)
    ]
    assert requests
    for path in requests:
        found = markers(path.read_text())
        assert not [m for m in found if m.startswith("patch:")], path.stem
        assert found[:2] == ["local:record_request", "local:send_onboarding_email"], path.stem
