"""The worker's pipeline in the test process: for tests about queue and database semantics (claim,
skip cancelled jobs, record once), not about Celery or the worker process.

:func:`drain` takes every message waiting on a task's queue (the bytes a publisher pushed, in the
order a worker would pop them) and runs it through ``workers.pipeline.process_message`` (decode,
claim, engine, record) with the noop engine of ``tests.faults.noop_worker``. Seconds of interpreter
and torch start-up per test are saved; what a real worker adds (Celery consumption, acks,
heartbeats, reaper) is tested with real processes (``start_worker``, ``tests/faults``).
"""

from __future__ import annotations

import base64
import json

import redis

from docqueue import db
from docqueue.names import queue_name
from docqueue.settings import get_settings


def drain(env: dict[str, str], task: str = "classify") -> int:
    """Process every message on ``task``'s queue of ``env``'s Redis; the number of jobs stored."""
    from tests.faults.noop_worker import NoopEngine
    from workers import registry as registry_module
    from workers.pipeline import process_message

    settings = get_settings(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"])
    registry = registry_module.Registry(settings)
    client = redis.Redis.from_url(env["REDIS_URL"])
    loaders = registry_module.LOADERS
    saved = loaders[task]
    loaders[task] = lambda _registry, _spec, _revision: NoopEngine()
    stored = 0
    try:
        while (raw := client.rpop(queue_name(task))) is not None:
            envelope = json.loads(raw)
            body = envelope["body"]
            if envelope["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            _args, kwargs, _embed = json.loads(body)
            stored += process_message(task=task, kwargs=kwargs, db=db.get_engine(settings.database_url),
                                      registry=registry, worker="in-process")
    finally:
        loaders[task] = saved
    return stored
