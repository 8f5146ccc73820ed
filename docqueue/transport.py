"""kombu's Redis transport with one change: items of docqueue queues are checked where they arrive.

kombu decodes a popped item in ``Channel._brpop_read`` (the consumer's BRPOP) and ``Channel._get``
(``Queue.get``, used by ``workers.gather``); both ``json.loads`` it and hand it on, and anything
that is not a well-formed envelope blows up inside the worker's event loop. This channel runs
:func:`docqueue.envelope.check_raw` first: a poison item goes to the dead-letter store with its
reason and the loop goes on; everything else continues exactly as kombu does it (acks_late, the
unacked hash, visibility timeout, restore on reconnect). Items of other queues (Celery's own
pidbox, for instance) are not touched.

It is installed by registering it under the ``redis``/``rediss`` transport aliases, which is how
kombu chooses a transport for a URL; ``redis+socket://`` (the embedded broker) resolves through the
same alias.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import kombu.transport
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from docqueue import deadletter, rejections
from docqueue.envelope import PoisonMessage, check_raw, identify
from docqueue.names import TASK_TYPES

log = logging.getLogger(__name__)


class DeadLetterPolicy:
    """Limits the channel applies; set once per process by :func:`install` from the settings."""

    checked_queues: frozenset[str] = frozenset(TASK_TYPES)
    max_message_bytes: int = 16 * 2**20
    max_raw_bytes: int = 2**20
    max_entries: int = 10_000
    events_maxlen: int = 1_000_000


class Channel(kombu_redis.Channel):
    """A Redis channel that dead-letters poison items of docqueue queues instead of crashing."""

    def _screen(self, item: bytes, queue: str) -> Any | None:
        """The decoded envelope, or None after dead-lettering a poison item."""
        if queue not in DeadLetterPolicy.checked_queues:
            return loads(bytes_to_str(item))
        try:
            return check_raw(item, queue, DeadLetterPolicy.max_message_bytes)
        except PoisonMessage as poison:
            self._dead_letter(item, queue, poison)
            return None

    def _dead_letter(self, item: bytes, queue: str, poison: PoisonMessage) -> None:
        # the batch and correlation id are read where they can be, even from an oversized item (its
        # headers are at the end, past the bytes kept), so the batch counts it and the publisher hears
        who = identify(item, parse=len(item) <= DeadLetterPolicy.max_message_bytes)
        refusal = rejections.Refusal(queue=queue, kind=poison.kind, reason=poison.reason,
                                     origin=deadletter.ORIGIN_TRANSPORT, batch=who.batch,
                                     correlation_id=who.correlation_id, webhook=rejections.valid_webhook(who.webhook),
                                     worker=f"{socket.gethostname()}/{os.getpid()}")
        limits = rejections.Limits(max_raw_bytes=DeadLetterPolicy.max_raw_bytes,
                                   max_entries=DeadLetterPolicy.max_entries,
                                   events_maxlen=DeadLetterPolicy.events_maxlen)
        try:
            with self.conn_or_acquire() as client:
                entry = rejections.record(client, item, refusal, limits)
        except Exception:
            log.exception("refused a %d-byte item on %s (%s) and could not store it as a dead letter",
                          len(item), queue, poison)
            return
        log.error("refused a %d-byte item on queue %s: %s; kept as dead letter %s (docqueue dlq show %s)",
                  len(item), queue, poison, entry, entry)

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise kombu_redis.Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            envelope = self._screen(item, dest)
            if envelope is not None:
                self.connection._deliver(envelope, dest)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]  # kombu keeps the polling connection here
            self._flush_brpop_reauth()

    def _get(self, queue: str, timeout: Any = None) -> Any:
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                while (item := client.rpop(self._q_for_pri(queue, pri))) is not None:
                    envelope = self._screen(item, queue)
                    if envelope is not None:
                        self._maybe_update_queues_expire(client, queue)
                        return envelope
            self._maybe_update_queues_expire(client, queue)
            raise kombu_redis.Empty()


class Transport(kombu_redis.Transport):
    Channel = Channel


def install(*, max_message_bytes: int, max_raw_bytes: int, max_entries: int, events_maxlen: int = 1_000_000
            ) -> None:
    """Make ``redis://``, ``rediss://`` and ``redis+socket://`` URLs use this transport."""
    DeadLetterPolicy.events_maxlen = events_maxlen
    DeadLetterPolicy.max_message_bytes = max_message_bytes
    DeadLetterPolicy.max_raw_bytes = max_raw_bytes
    DeadLetterPolicy.max_entries = max_entries
    path = f"{__name__}:Transport"
    for alias in ("redis", "rediss"):
        if kombu.transport.TRANSPORT_ALIASES.get(alias) != path:
            kombu.transport.TRANSPORT_ALIASES[alias] = path
            kombu.transport._transport_cache.pop(alias, None)
