"""kombu's Redis transport with one change: items of docqueue queues are checked where they arrive.

kombu decodes a popped item in ``Channel._brpop_read`` (the consumer's BRPOP) and ``Channel._get``
(``Queue.get``, used by ``workers.gather``); both ``json.loads`` it and hand it on, and anything
that is not a well-formed envelope blows up inside the worker's event loop. This channel runs
:func:`docqueue.envelope.check_raw` first: a poison item goes to the dead-letter store with its
reason and the loop goes on; everything else continues exactly as kombu does it (acks_late, the
unacked hash, visibility timeout, restore on reconnect). Items of other queues (Celery's own
pidbox, for instance) are not touched.

The popped item itself is read by :mod:`docqueue.bounded_pop`, not redis-py's parser: an item over
``DOCQUEUE_MAX_MESSAGE_BYTES`` (of any queue) is streamed through and dead-lettered from its first
and last bytes, so its size never becomes the worker's memory.

It is installed by registering it under the ``redis``/``rediss`` transport aliases, which is how
kombu chooses a transport for a URL; ``redis+socket://`` (the embedded broker) resolves through the
same alias.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

import kombu.transport
import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis._parsers import _RESP2Parser

from docqueue import bounded_pop, deadletter, rejections
from docqueue.envelope import SCAN_BYTES, PoisonMessage, check_raw, identify
from docqueue.names import TASK_TYPES

log = logging.getLogger(__name__)


class DeadLetterPolicy:
    """Limits the channel applies; set once per process by :func:`install` from the settings."""

    checked_queues: frozenset[str] = frozenset(TASK_TYPES)
    max_message_bytes: int = 16 * 2**20
    max_raw_bytes: int = 2**20
    max_entries: int = 10_000
    events_maxlen: int = 1_000_000
    #: Seconds a worker keeps trying to put back an item Redis would not record as unacked.
    put_back_s: float = 300.0


class QoS(kombu_redis.QoS):
    """kombu's unacked bookkeeping, with acks that go through while Redis is at ``maxmemory``.

    kombu removes an acked message from ``unacked`` in a MULTI; Redis refuses every command queued in
    a MULTI once memory is over ``maxmemory`` (even ZREM and HDEL, which free memory), and the error
    ended the worker. The same two commands without MULTI are accepted. Should even they fail for
    memory, the ack is logged and the message stays in ``unacked``: it comes back after the
    visibility timeout and finds its jobs finished (``workers.results.claim``)."""

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        if pipe is None:
            with self.channel.conn_or_acquire() as client:
                pipe = client.pipeline(transaction=False)
        return super()._remove_from_indices(delivery_tag, pipe)

    def ack(self, delivery_tag: Any) -> None:
        try:
            self._remove_from_indices(delivery_tag).execute()
        except redis.exceptions.ResponseError as e:
            if not _refused_for_memory(e):
                raise
            log.warning("Redis refused to remove acked message %s from unacked (%s); it comes back after the "
                        "visibility timeout and finds its jobs finished", delivery_tag, e)
        virtual.QoS.ack(self, delivery_tag)


class Channel(kombu_redis.Channel):
    """A Redis channel that dead-letters poison items of docqueue queues instead of crashing."""

    QoS = QoS

    def _connparams(self, asynchronous: bool = False) -> Any:
        # redis-py's pure-Python parser even where hiredis is installed: bounded_pop reads a popped
        # item in its place (hiredis buffers what it reads where this reader cannot see it)
        params = super()._connparams(asynchronous)
        params["parser_class"] = _RESP2Parser
        return params

    def _screen(self, item: bytes, queue: str) -> Any | None:
        """The decoded envelope, or None after dead-lettering a poison item."""
        if queue not in DeadLetterPolicy.checked_queues:
            return loads(bytes_to_str(item))
        try:
            return check_raw(item, queue, DeadLetterPolicy.max_message_bytes)
        except PoisonMessage as poison:
            self._dead_letter(item, queue, poison)
            return None

    def _dead_letter(self, item: bytes, queue: str, poison: PoisonMessage, size: int | None = None) -> None:
        """``size``: of the whole item, where ``item`` is only the sample of an oversized one."""
        # the batch and correlation id are read where they can be, even from an oversized item (its
        # headers are at the end, past the bytes kept), so the batch counts it and the publisher hears
        size = len(item) if size is None else size
        who = identify(item, parse=size <= DeadLetterPolicy.max_message_bytes)
        refusal = rejections.Refusal(queue=queue, kind=poison.kind, reason=poison.reason,
                                     origin=deadletter.ORIGIN_TRANSPORT, batch=who.batch,
                                     correlation_id=who.correlation_id, webhook=rejections.valid_webhook(who.webhook),
                                     worker=f"{socket.gethostname()}/{os.getpid()}")
        limits = rejections.Limits(max_raw_bytes=DeadLetterPolicy.max_raw_bytes,
                                   max_entries=DeadLetterPolicy.max_entries,
                                   events_maxlen=DeadLetterPolicy.events_maxlen)
        try:
            with self.conn_or_acquire() as client:
                entry = rejections.record(client, item, refusal, limits, size=size)
        except Exception:
            log.exception("refused a %d-byte item on %s (%s) and could not store it as a dead letter",
                          size, queue, poison)
            return
        log.error("refused a %d-byte item on queue %s: %s; kept as dead letter %s (docqueue dlq show %s)",
                  size, queue, poison, entry, entry)

    def _brpop_read(self, **options: Any) -> bool:
        try:
            connection = self.client.connection
            try:
                popped = self._read_popped(connection)
            except bounded_pop.NotBounded:
                dest__item = self.client.parse_response(connection, "BRPOP", **options)
                popped = bounded_pop.Popped(dest__item[0], dest__item[1], len(dest__item[1])) if dest__item else None
            except self.connection_errors:
                connection.disconnect()
                raise
            if popped is None:
                raise kombu_redis.Empty()
            dest = bytes_to_str(self._unprefixed(popped.key or b"")).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            if popped.item is None:
                self._refuse_oversized(popped, dest)
                return True
            item = popped.item
            envelope = self._screen(item, dest)
            if envelope is not None:
                try:
                    self.connection._deliver(envelope, dest)
                except redis.exceptions.ResponseError as e:
                    # BRPOP took the item, then Redis refused kombu's write to the unacked hash: the item
                    # would be in neither place. Put it back; out of memory, go on (it passes), anything
                    # else stops the worker with a non-zero status (workers.__main__), the item kept.
                    self._put_back(item, dest, e)
                    if not _refused_for_memory(e):
                        raise
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]  # kombu keeps the polling connection here
            self._flush_brpop_reauth()

    def _read_popped(self, connection: Any) -> bounded_pop.Popped | None:
        """The reply of the BRPOP or RPOP just sent, read without holding more than the limit of an
        oversized item (:mod:`docqueue.bounded_pop`)."""
        return bounded_pop.read_pop(connection, limit=DeadLetterPolicy.max_message_bytes,
                                    head=max(DeadLetterPolicy.max_raw_bytes, 2 * SCAN_BYTES), tail=SCAN_BYTES)

    def _unprefixed(self, key: bytes) -> bytes:
        prefix = (self.global_keyprefix or "").encode()
        return key[len(prefix):] if prefix and key.startswith(prefix) else key

    def _refuse_oversized(self, popped: bounded_pop.Popped, queue: str) -> None:
        """Dead-letter an item over the limit from its sample (first and last bytes): the rest of it
        was never held."""
        limit = DeadLetterPolicy.max_message_bytes
        self._dead_letter(popped.sample, queue, PoisonMessage("message_too_large", f"{popped.size} bytes, the "
                          f"limit is {limit}"), size=popped.size)

    def _put_back(self, item: bytes, queue: str, error: Exception) -> None:
        """Push a popped item back where BRPOP takes the next one, retrying while Redis is out of
        memory for up to :attr:`DeadLetterPolicy.put_back_s`. If Redis never takes it, it is lost to
        Redis, not to docqueue: its jobs stay ``queued`` and the reaper publishes them again
        (``workers.lost_jobs``)."""
        who = identify(item)
        deadline = time.monotonic() + DeadLetterPolicy.put_back_s
        delay = 0.2
        log.error("Redis refused the unacked record of a message of batch %s on %s (%s); holding it to put it "
                  "back on the queue (up to %.0f s)", who.batch, queue, error, DeadLetterPolicy.put_back_s)
        # a refusal that is not about memory will not pass by waiting: one try, then the caller stops
        deadline = deadline if _refused_for_memory(error) else time.monotonic()
        while True:
            try:
                with self.conn_or_acquire() as client:
                    client.rpush(queue, item)
            except redis.exceptions.RedisError as e:
                if time.monotonic() + delay > deadline:
                    log.error("Redis refused to keep a message of batch %s on %s (%s, then %s); its jobs stay "
                              "queued and the reaper publishes them again", who.batch, queue, error, e)
                    return
                time.sleep(delay)
                delay = min(2.0, delay * 2)
                continue
            log.warning("the message of batch %s was put back on queue %s", who.batch, queue)
            return

    def _get(self, queue: str, timeout: Any = None) -> Any:
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                while (popped := self._rpop(client, self._q_for_pri(queue, pri))) is not None:
                    if popped.item is None:
                        self._refuse_oversized(popped, queue)
                        continue
                    envelope = self._screen(popped.item, queue)
                    if envelope is not None:
                        self._maybe_update_queues_expire(client, queue)
                        return envelope
            self._maybe_update_queues_expire(client, queue)
            raise kombu_redis.Empty()

    def _rpop(self, client: Any, key: str) -> bounded_pop.Popped | None:
        """``RPOP key`` on a connection of the pool, read as :meth:`_brpop_read` reads BRPOP."""
        command = ["RPOP", key]
        if self.global_keyprefix:
            command = client._prefix_args(command)
        pool = client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_command(*command)
            try:
                return self._read_popped(connection)
            except bounded_pop.NotBounded:
                item = connection.read_response()
                return None if item is None else bounded_pop.Popped(None, item, len(item))
        finally:
            pool.release(connection)


def _refused_for_memory(error: Exception) -> bool:
    """Redis at ``maxmemory`` (noeviction) refusing a write: ``OOM ...``, or ``EXECABORT`` of the
    MULTI that held it."""
    if isinstance(error, (redis.exceptions.OutOfMemoryError, redis.exceptions.ExecAbortError)):
        return True
    text = str(error)
    return text.startswith(("OOM", "EXECABORT")) or "maxmemory" in text


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
