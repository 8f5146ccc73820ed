"""The Redis keys of schedules, in one place: the lock that lets one beat fire a due time, the
heartbeat that says a run's process is alive, and the mark of a run first seen without one.

Every key's name and lifetime is derived here, so the runner that writes a key and the recovery
that reads it cannot disagree about either.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import datetime

from redis import Redis, RedisError

from docqueue.secrets import mask_url
from producer.schedules.timing import utc

log = logging.getLogger("docqueue.beat")


def lock_key(schedule_id: str, due: datetime) -> str:
    """Held (``SET NX EX``) by the beat firing this due time of this schedule."""
    return f"docqueue:schedule-lock:{schedule_id}:{utc(due).strftime('%Y%m%dT%H%M%S.%fZ')}"


#: A run's heartbeat lives this many renewal periods (``schedule_heartbeat_s``): a renewal or two may
#: come late without the run looking dead.
HEARTBEAT_LIFETIMES = 3


def heartbeat_lifetime(every: float) -> float:
    """Seconds a run's heartbeat, renewed every ``every`` seconds, lives after its last renewal."""
    return HEARTBEAT_LIFETIMES * every


def alive_key(run_id: str) -> str:
    """The heartbeat of a run in progress (renewed by its process, gone when the process is)."""
    return f"docqueue:schedule-run:{run_id}:alive"


def suspect_key(run_id: str) -> str:
    """When a beat first found a running run without heartbeat (so a second look can confirm it)."""
    return f"docqueue:schedule-run:{run_id}:suspect"


def resume_key(run_id: str) -> str:
    """Held by the beat resuming an abandoned run, so two beats never resume the same one."""
    return f"docqueue:schedule-run:{run_id}:resume"


def take_due(redis: Redis, schedule_id: str, due: datetime, token: str, ttl_s: int) -> bool:
    """Whether this beat (``token``) may fire ``due``: the first to ask holds it for ``ttl_s``."""
    return bool(redis.set(lock_key(schedule_id, due), token, nx=True, ex=ttl_s))


def take_resume(redis: Redis, run_id: str, token: str, ttl_s: int) -> bool:
    """Whether this beat may resume the abandoned run: the first to ask holds it for ``ttl_s``."""
    return bool(redis.set(resume_key(run_id), token, nx=True, ex=ttl_s))


def silent_twice(redis: Redis, run_id: str, now: float, lifetime: float) -> bool:
    """True when the run's heartbeat is missing now and was missing at a first look at least
    ``lifetime`` seconds ago; the first look is recorded here, and a heartbeat seen clears it."""
    if redis.exists(alive_key(run_id)):
        redis.delete(suspect_key(run_id))
        return False
    first_seen = redis.get(suspect_key(run_id))
    if first_seen is None:
        redis.set(suspect_key(run_id), str(now), ex=int(lifetime * 10) + 60)
        return False
    return now - float(first_seen) >= lifetime


def forget_suspicion(redis: Redis, run_id: str) -> None:
    """The run has been dealt with: its first-look mark goes."""
    redis.delete(suspect_key(run_id))


class RunHeartbeat:
    """Renews a run's ``alive_key`` every ``every`` seconds from a daemon thread while the run reads
    and submits (a big inbox file can take minutes between two points of the run's own code). A
    failed renewal is logged, not raised: the run goes on, and a missing heartbeat is only acted on
    when it is still missing at a second look (``producer.schedules.recovery``).

    Named for its meaning: a schedule run's liveness in Redis, not a job's heartbeat in the database
    (``workers.pipeline.Heartbeat``)."""

    def __init__(self, redis: Redis, key: str, every: float) -> None:
        self.redis, self.key, self.every = redis, key, every
        self.lifetime_ms = int(heartbeat_lifetime(every) * 1000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="schedule-run-heartbeat", daemon=True)

    def _beat(self) -> None:
        try:
            self.redis.set(self.key, "1", px=self.lifetime_ms)
        except RedisError as e:
            log.warning("schedule run heartbeat not renewed: %s", mask_url(str(e)))

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._beat()

    def __enter__(self) -> RunHeartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(RedisError):  # else it expires on its own
            self.redis.delete(self.key)

