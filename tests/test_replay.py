"""Histories recorded from the scenarios replay against today's workflow code.

Each folder of `tests/histories/` holds the histories one version of the workflows
recorded (`v1/`: before the received email; `v2-received-email/`: with it, and with the
status link emailed again on a duplicate; `v3-partner-account/`: the approved
administrator's partner user workflow, and that workflow's own history; up to v3 each
request was the child of its email's applicant workflow, whose histories are kept too;
`v4-one-workflow/`: one workflow per request, one local activity per step, and a
duplicate submission's own short workflow; `v5-request-time/`: reminders, expiry and holds
on durable timers; `v6-personal-data/`: a rejected request's retention workflow, and the
`erase` Update; `v7-versioned/`: the first build on Worker Versioning, whose requests record
one patch marker, a search-attribute upsert per change and one alarm for their clocks, and
answer their Updates with less than the whole status; the dual-write sync workflows'
histories, and no duplicate's, since a duplicate starts no workflow). All of them
replay, so a change that would break a request started under any of those versions
(non-determinism) fails here. After
an intended change to the command sequence, guarded by `workflow.patched`, record into a
new folder: set `RECORDING_VERSION` in `tests/scenario.py`, then
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
from workflows.onboarding import (
    FEWER_EVENTS_PATCH,
    ONE_WORKFLOW_PATCH,
    PARTNER_ACCOUNT_PATCH,
    PERSONAL_DATA_PATCH,
    RECEIVED_EMAIL_PATCH,
    REQUEST_TIME_PATCH,
)
from workflows.registry import WORKFLOWS, workflow_runner

VERSIONS = sorted(folder for folder in HISTORIES.iterdir() if folder.is_dir())
RECORDED = sorted(HISTORIES.glob("*/*.json"))
# Every path of the process, in every version.
PATHS = {
    "won",
    "cancelled",
    "lost",
    "integration_off_approved",
    "integration_off_rejected",
}
# What the versions since one workflow per request record besides: an email applying
# twice, a partner user.
DUPLICATES = {"duplicate", "status_link_reminded", "partner_user"}
# What the versions since request time record besides: reminders, an expiry, a hold.
TIME = {"reminded", "expired", "held"}
# What the versions since personal data record besides: a rejected request's retention
# (and the retention's own workflow), an erasure while the request's emails were still
# retrying.
PERSONAL_DATA = {"retained", "personal_data", "erased"}
# What the current version records besides: the dual-write sync workflows. A duplicate
# starts no workflow any more, so it records none.
DUAL_WRITE = {"dual_write_commerce_to_sales", "dual_write_sales_to_commerce"}
# The versions whose requests were children of an applicant workflow.
WITH_APPLICANT = ("v1", "v2-received-email", "v3-partner-account")


def test_every_version_has_histories_for_every_path() -> None:
    assert [folder.name for folder in VERSIONS] == [
        *WITH_APPLICANT,
        "v4-one-workflow",
        "v5-request-time",
        "v6-personal-data",
        RECORDING_VERSION,
    ]
    for folder in VERSIONS:
        paths = PATHS | ({"applicant"} if folder.name in WITH_APPLICANT else set())
        assert {path.stem for path in folder.glob("*.json")} >= paths, folder.name
    assert {path.stem for path in (HISTORIES / "v4-one-workflow").glob("*.json")} >= DUPLICATES
    assert {path.stem for path in (HISTORIES / "v5-request-time").glob("*.json")} >= (
        DUPLICATES | TIME
    )
    assert {path.stem for path in (HISTORIES / "v6-personal-data").glob("*.json")} >= (
        DUPLICATES | TIME | PERSONAL_DATA
    )
    current = {path.stem for path in (HISTORIES / RECORDING_VERSION).glob("*.json")}
    assert current >= (DUPLICATES - {"duplicate"}) | TIME | PERSONAL_DATA | DUAL_WRITE


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


def test_the_onboarding_patches_are_decided_before_any_store_write() -> None:
    """Decided after a local activity, a patch may replay differently from how it ran."""
    expected = {
        "v3-partner-account": [f"patch:{RECEIVED_EMAIL_PATCH}", f"patch:{PARTNER_ACCOUNT_PATCH}"],
        "v4-one-workflow": [f"patch:{ONE_WORKFLOW_PATCH}", "local:record_request"],
        "v5-request-time": [
            f"patch:{ONE_WORKFLOW_PATCH}",
            f"patch:{REQUEST_TIME_PATCH}",
            "local:record_request",
        ],
        "v6-personal-data": [
            f"patch:{ONE_WORKFLOW_PATCH}",
            f"patch:{REQUEST_TIME_PATCH}",
            f"patch:{PERSONAL_DATA_PATCH}",
            "local:record_request",
        ],
        # One marker stands for the three before it.
        RECORDING_VERSION: [f"patch:{FEWER_EVENTS_PATCH}", "local:record_request"],
    }
    for version, first_markers in expected.items():
        requests = [
            path
            for path in (HISTORIES / version).glob("*.json")
            if not path.stem.startswith(
                ("applicant", "partner_user", "personal_data", "dual_write")
            )
        ]
        assert requests, version
        for path in requests:
            assert markers(path.read_text())[: len(first_markers)] == first_markers, (
                f"{version}/{path.stem}"
            )
