"""The handles every caller of a deployment needs, built on first use: the results database, the
broker URL (starting the embedded Redis when none is configured or running), the Celery app and a
short-timeout Redis client.

The CLI's per-invocation context (``producer.context.Context``) and the Python client
(``docqueue.Client``) are both such callers; they differ only in where their settings come from and
in whether starting an embedded broker is announced, so both subclass :class:`Resources` instead of
each keeping its own copy of the lazy properties.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from docqueue import db
from docqueue.broker import redis_client, resolve_broker_url
from docqueue.settings import Settings

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy.engine import Engine


class Resources(ABC):
    """Lazily built database engine, broker URL and Celery app over one :class:`Settings`.

    Nothing is touched until asked for, so ``docqueue --help`` or ``Client()`` alone connect nowhere.
    """

    #: Told (one line) when the embedded Redis is started because no broker is configured or running.
    announce_embedded_broker: Callable[[str], None] | None = None

    @property
    @abstractmethod
    def settings(self) -> Settings:
        """The settings every resource is built from."""

    @cached_property
    def engine(self) -> Engine:
        """The results database, migrated to this release's schema on first use."""
        return db.ensure_schema(self.settings.database_url)

    @cached_property
    def broker_url(self) -> str:
        """``REDIS_URL``, a Redis answering on the default port, or an embedded one started now."""
        return resolve_broker_url(self.settings, announce=self.announce_embedded_broker)

    @cached_property
    def app(self) -> Celery:
        """The Celery app that publishes to the broker (imported late: ``import docqueue`` stays light)."""
        from docqueue.queue import make_celery

        return make_celery(self.settings, self.broker_url)

    def redis(self, timeout: float | None = None) -> Any:
        """A plain Redis client on the broker with a short timeout (events, dead letters, presence)."""
        return redis_client(self.broker_url, timeout=timeout or self.settings.broker_connect_timeout_s,
                            settings=self.settings)

    def close(self) -> None:
        """Release the Celery app's connections; a later use builds it again."""
        app = self.__dict__.pop("app", None)
        if app is not None:
            app.close()
