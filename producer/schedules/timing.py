"""When schedules are due: duration text, cron and interval maths, catch-up plans.

Pure: datetimes and schedule rows in, datetimes out; no database, no Redis, no clock read except
where the caller passes ``now``. Everything else in ``producer.schedules`` builds on these answers,
so they are tested apart, with the clock given.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import croniter

from docqueue.models import Schedule

CATCH_UP_POLICIES = ("none", "last", "all")
OVERLAP_POLICIES = ("skip", "allow")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``15m``, ``2s``, ``1h30m``, ``500ms`` or a bare number of seconds."""
    value = text.strip().lower().replace(" ", "")
    try:
        return float(value)
    except ValueError:
        pass
    if not value or _DURATION.sub("", value):
        raise ValueError(f"{text!r} is not a duration (e.g. 30s, 15m, 1h30m, 1d)")
    return sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION.findall(value))


def format_duration(seconds: float) -> str:
    if seconds < 1 or seconds != int(seconds):
        return f"{seconds:g}s"
    out, rest = "", int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without a zone; docqueue stores UTC everywhere."""
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def utc(dt: datetime | None) -> datetime:
    """:func:`aware` for a datetime that is known to be there (a NOT NULL column)."""
    out = aware(dt)
    assert out is not None
    return out


def describe(schedule: Schedule) -> str:
    if schedule.cron:
        return f"cron {schedule.cron}" + ("" if schedule.timezone == "UTC" else f" ({schedule.timezone})")
    return f"every {format_duration(schedule.every_s or 0)}"


def next_due(schedule: Schedule, after: datetime) -> datetime:
    """The first due time strictly after ``after``. Interval schedules are anchored at their creation
    time, so every beat computes the very same due times (the lock and the run row key on them)."""
    if schedule.cron:
        local = after.astimezone(ZoneInfo(schedule.timezone))
        return utc(croniter(schedule.cron, local).get_next(datetime))
    every = timedelta(seconds=schedule.every_s or 0)
    anchor = utc(schedule.created_at)
    return anchor + ((after - anchor) // every + 1) * every


def due_between(schedule: Schedule, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """The newest ``limit`` due times in ``(after, until]``, oldest first."""
    found: list[datetime] = []
    if schedule.cron:
        zone = ZoneInfo(schedule.timezone)
        itr = croniter(schedule.cron, (until + timedelta(seconds=1)).astimezone(zone))
        while len(found) < limit:
            due = utc(itr.get_prev(datetime))
            if due <= after:
                break
            if due <= until:
                found.append(due)
        return found[::-1]
    every = timedelta(seconds=schedule.every_s or 0)
    anchor = utc(schedule.created_at)
    last_k = (until - anchor) // every
    first_k = max((after - anchor) // every + 1, last_k - limit + 1, 1)
    return [anchor + k * every for k in range(first_k, last_k + 1)]


def plan_runs(policy: str, dues: list[datetime], now: datetime, grace_s: float) -> list[tuple[datetime, str]]:
    """Which of the due times to fire, each with its trigger (``schedule`` when on time, ``catch-up``
    when later than the grace).

    Several due times at once mean the beat was down (or busy) through some of them. ``none`` fires
    the newest only if it is still on time; ``last`` fires the newest whatever its lateness (a beat
    down at 02:00 runs once when back); ``all`` fires every one of them, oldest first.
    """
    def trigger(due: datetime) -> str:
        return "schedule" if (now - due).total_seconds() <= grace_s else "catch-up"

    if not dues:
        return []
    if policy == "all":
        return [(d, trigger(d)) for d in dues]
    newest = dues[-1]
    if policy == "none" and trigger(newest) != "schedule":
        return []
    return [(newest, trigger(newest))]
