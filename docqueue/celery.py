"""A Celery app object for Celery's own tools: ``celery -A docqueue inspect active_queues``,
``celery -A docqueue status``, Flower (``celery -A docqueue flower``).

Celery looks for ``docqueue.celery`` when given ``-A docqueue``. The app is built on first use
from the settings (``REDIS_URL`` and the rest), so importing this module connects to nothing; it
sends and inspects, and runs no task: workers start with ``docqueue worker``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

_app: Celery | None = None


def __getattr__(name: str) -> Any:
    """``app`` (and ``celery``, the other name Celery tries), built once, on first access."""
    global _app
    if name not in ("app", "celery"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        from docqueue.broker import resolve_broker_url
        from docqueue.queue import make_celery
        from docqueue.settings import get_settings

        settings = get_settings()
        _app = make_celery(settings, resolve_broker_url(settings))
    return _app
