"""The Celery application factory shared by producer and workers.

The producer uses it only to *send* tasks by name; workers register their tasks on it. Every
setting that protects jobs lives here, so both sides agree on it.
"""

from __future__ import annotations

from celery import Celery

from docqueue import transport
from docqueue.names import TASK_TYPES, queue_name, task_name
from docqueue.settings import Settings
from docqueue.webhooks import DELIVER_TASK, WEBHOOK_QUEUE


def make_celery(settings: Settings, broker_url: str) -> Celery:
    """A Celery app speaking JSON only, one queue per task type, with at-least-once delivery."""
    # Poison items on docqueue queues are dead-lettered where kombu decodes them (docqueue.transport).
    transport.install(max_message_bytes=settings.max_message_bytes, max_raw_bytes=settings.dlq_max_raw_bytes,
                      max_entries=settings.dlq_max_entries, events_maxlen=settings.events_maxlen)
    app = Celery("docqueue", broker=broker_url, set_as_current=False)
    if broker_url.startswith("rediss://"):
        from docqueue.broker import tls_options

        app.conf.broker_use_ssl = tls_options(settings)
    app.conf.update(
        # JSON only on the wire, never pickle: a queue is an attack surface, and unpickling runs code.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        # Results go to the database (workers.results), not to a Celery result backend.
        task_ignore_result=True,
        result_backend=None,
        task_routes={**{task_name(t): {"queue": queue_name(t)} for t in TASK_TYPES},
                     DELIVER_TASK: {"queue": WEBHOOK_QUEUE}},
        task_create_missing_queues=True,
        # At-least-once: ack after the work is recorded; a killed child puts the message back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit,
        # Redis re-delivers unacked messages after the visibility timeout (minutes: the claim and the
        # heartbeats make a second delivery of a running message harmless, see Settings). kombu
        # looks for them every interval x throttle seconds (100 s by its defaults): scan a tenth
        # of the timeout apart, so a message comes back within about 1.1 x the timeout.
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 10)),
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # A child loads its model after the fork; give it time before Celery declares it dead.
        worker_proc_alive_timeout=settings.worker_load_timeout,
        # Task events (on by default) are what Flower and `celery events` show; they travel as Redis
        # PUBLISH on the celeryev fanout, so nothing piles up when nobody listens.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        # A child whose peak RSS passed the ceiling exits after its task (its result and the ack are
        # sent first) and a fresh child takes its place; billiard counts KiB (ru_maxrss).
        worker_max_memory_per_child=settings.worker_max_memory_mb * 1024 or None,
    )
    return app
