"""A request's clocks: when the team whose move it is is reminded, and when it expires.

Kept out of the workflow's process the way samples-python's `UpdatableTimer` keeps its
timer out of `run`: the workflow starts the clocks once the request is recorded, tells
them of each stage, hold and resume, and waits on them for its next decision. Each wait's
timer is the next of the two clocks; a hold stops both (the wait has no timer), a resume
moves them on by the time held, and either wakes the wait.

The wait keeps one alarm across wakes and stages: it is set anew only when the next
strike comes sooner than it rings, and one that rings early (the clocks moved on
meanwhile) is simply set again. So a decision, a hold or a resume sets no timer and
cancels none unless the deadline came closer, and an alarm still set when the request is
decided is left to lapse with the workflow. The price: an alarm whose deadline moved
later (a new stage's reminder, a resume) rings once in vain should the request still wait
then; its summary names what it was first set for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.activity_io import RequestTiming
    from models.lifecycle import Stage
    from models.status import OnboardingStatus

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
        self._alarm: asyncio.Task[None] | None = None
        self._alarm_at: datetime | None = None

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

    def show_on(self, status: OnboardingStatus) -> None:
        """The status's next reminder and expiry: none while it is held."""
        status.next_reminder_at = status.expires_at = None
        if status.held is None and self.expire_at is not None:
            status.expires_at = self.expire_at
            status.next_reminder_at = self.next_reminder()

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
            if self._alarm is not None and self._alarm.done():
                self._alarm = None
            if not on_hold() and self.expire_at is not None:
                reminder = self.next_reminder()
                at = reminder or self.expire_at
                if at <= workflow.now():
                    return self._strike(reminder)
                self._ring_at(at, reminder_summary() if reminder else EXPIRY_SUMMARY)
            await workflow.wait_condition(lambda: decided() or self._moved or self._rang())
        return None

    def _rang(self) -> bool:
        return self._alarm is not None and self._alarm.done()

    def _ring_at(self, at: datetime, summary: str) -> None:
        """The alarm rings by `at`: kept if it does already."""
        if self._alarm is not None and self._alarm_at is not None and self._alarm_at <= at:
            return
        if self._alarm is not None:
            self._alarm.cancel()
        self._alarm_at = at
        self._alarm = asyncio.create_task(workflow.sleep(at - workflow.now(), summary=summary))

    def _strike(self, reminder: datetime | None) -> Struck:
        """The next clock strikes: a reminder's clock is set to the next one."""
        if reminder is None:
            return Struck.EXPIRY
        assert self.timing is not None and self.remind_at is not None
        self.remind_at += self.timing.remind_every
        return Struck.REMINDER
