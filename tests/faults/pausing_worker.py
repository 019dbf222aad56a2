"""`worker.py` with one test seam: it can stop for good right after a store commits.

While the file named by FAULT_PAUSE_FILE exists, the first transaction to commit
writes FAULT_COMMITTED_FILE and then hangs, so the fault tests can kill the worker
after an activity's commit and before the activity reports to Temporal.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import worker
from client.connection import exit_process

PAUSE = Path(os.environ["FAULT_PAUSE_FILE"]) if "FAULT_PAUSE_FILE" in os.environ else None
COMMITTED = Path(os.environ.get("FAULT_COMMITTED_FILE", "/dev/null"))


@event.listens_for(Session, "after_commit")
def _hang_after_commit(session: Session) -> None:
    if PAUSE is not None and PAUSE.exists():
        COMMITTED.write_text(str(session.info.get("what", "a commit")))
        time.sleep(3600)


if __name__ == "__main__":
    exit_process(asyncio.run(worker.main()))
