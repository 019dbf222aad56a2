"""A request's clocks: when the team whose move it is is reminded, and when it expires.

Kept out of the workflow's process the way samples-python's `UpdatableTimer` keeps its
timer out of `run`: the workflow starts the clocks once the request is recorded, tells
them of each stage, hold and resume, and waits on them for its next decision. Each wait's
timer is the next of the two clocks; a hold stops both (the wait has no timer), a resume
moves them on by the time held, and either wakes the wait to set its timer anew.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.activity_io import RequestTiming
    from models.lifecycle import Stage

EXPIRY_SUMMARY = "Expire the request: rejected by the system"


class Struck(Enum):
    REMINDER = "reminder"
    EXPIRY = "expiry"


class RequestClock:
    def __init__(self) -> None:
        # The request's time settings, as the worker had them when it was recorded; None
        # for a request that keeps no time.
        self.timing: RequestTiming | None = None
        self.remind_at: datetime | None = None
        self.expire_at: datetime | None = None
        self._moved = False

    def start(self, timing: RequestTiming) -> None:
        """The request is recorded: it expires `expire_after` from now."""
        self.timing = timing
        self.expire_at = workflow.now() + timing.expire_after

    def enter(self, stage: Stage) -> None:
        """A decided request keeps no clock; an undecided one reminds the team whose move
        it now is from the stage's start."""
        if stage.decided:
            self.remind_at = self.expire_at = None
        elif self.timing is not None:
            self.remind_at = workflow.now() + self.timing.remind_after

    def hold(self) -> None:
        self._moved = True

    def resume(self, held_for: timedelta) -> None:
        if self.expire_at is not None:
            self.expire_at += held_for
        if self.remind_at is not None:
            self.remind_at += held_for
        self._moved = True

    def next_reminder(self) -> datetime | None:
        """When the team is next reminded, if before the request expires."""
        if self.remind_at is not None and self.expire_at is not None:
            return self.remind_at if self.remind_at < self.expire_at else None
        return None

    async def wait(
        self,
        decided: Callable[[], bool],
        on_hold: Callable[[], bool],
        reminder_summary: Callable[[], str],
    ) -> Struck | None:
        """Until `decided()`, or a clock strikes: which one (a reminder's clock is set to
        the next one already), or None once decided."""
        while not decided():
            self._moved = False
            if on_hold() or self.expire_at is None:
                await workflow.wait_condition(lambda: decided() or self._moved)
                continue
            reminder = self.next_reminder()
            at, summary = (
                (reminder, reminder_summary()) if reminder else (self.expire_at, EXPIRY_SUMMARY)
            )
            if at > workflow.now():
                try:
                    await workflow.wait_condition(
                        lambda: decided() or self._moved,
                        timeout=at - workflow.now(),
                        timeout_summary=summary,
                    )
                    continue
                except TimeoutError:
                    pass
            if not decided():
                if reminder is None:
                    return Struck.EXPIRY
                assert self.timing is not None and self.remind_at is not None
                self.remind_at += self.timing.remind_every
                return Struck.REMINDER
        return None
