"""Celery beat driven by the ``schedule`` table: ``docqueue beat`` and ``docqueue watch`` run
Celery's beat service loop with this scheduler, which fires in this very process what is due."""

from __future__ import annotations

import logging
from typing import Any

from celery import beat

from producer.schedules.runner import ScheduleRunner

log = logging.getLogger("docqueue.beat")


class DatabaseScheduler(beat.Scheduler):
    """Celery beat's scheduler with the ``schedule`` table as its schedule: every tick reads the table
    (a schedule added, paused or removed is seen at the next tick, within ``max_interval``) and fires
    in this process what is due. No Celery task is sent for a run: firing is the submission itself."""

    def __init__(self, *args: Any, runner: ScheduleRunner, only: str | None = None, **kwargs: Any) -> None:
        self.runner, self.only = runner, only
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        """Nothing to load: the table is read on every tick."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            return self.runner.tick(only=self.only, max_interval=float(self.max_interval))
        except Exception:  # the database away for a moment: beat keeps going and looks again
            log.exception("beat: cannot read the schedules; trying again in %ss", self.max_interval)
            return float(self.max_interval)

    def sync(self) -> None:
        """Nothing to write: each run is committed as it happens."""

    @property
    def info(self) -> str:
        return "    . db -> schedule table" + (f" (schedule {self.only} only)" if self.only else "")
