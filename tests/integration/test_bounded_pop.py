"""A popped item is read without holding more than the limit of it (issue 23, item 6), on the real Redis.

``docqueue.bounded_pop.read_pop`` reads the reply of a BRPOP or RPOP in redis-py's place: an item
within the limit comes back whole and byte for byte, an oversized one as its size and its first and
last bytes, and the connection goes on working after either. Through kombu (``Queue.get``, the path
``workers.gather`` takes), an oversized item is a dead letter with its batch and size, and the good
item behind it is delivered.
"""

from __future__ import annotations

import os

import pytest
import redis
from kombu import Connection, Queue

from docqueue import deadletter, rejections, transport
from docqueue.bounded_pop import Popped, read_pop
from tests.integration.test_foreign_publisher import foreign_message

LIMIT = 64 * 1024


def _read(client: redis.Redis, *command: object) -> Popped | None:
    connection = client.connection_pool.get_connection()
    try:
        connection.send_command(*command)
        return read_pop(connection, limit=LIMIT, head=1000, tail=100)
    finally:
        client.connection_pool.release(connection)


def test_items_within_and_over_the_limit(clean_redis: str) -> None:
    client = redis.Redis.from_url(clean_redis)
    small = os.urandom(LIMIT)  # exactly the limit: whole, every byte (CR LF included by chance)
    big = b"<head>" + os.urandom(3 * 2**20) + b"<tail>"
    client.lpush("q", small, big)  # RPOP takes the small one first
    assert _read(client, "RPOP", "q") == Popped(key=None, item=small, size=LIMIT)
    popped = _read(client, "BRPOP", "q", 1)
    assert popped is not None and popped.key == b"q" and popped.item is None and popped.size == len(big)
    assert popped.sample == big[:1000] + big[-100:]
    assert client.ping() and client.llen("q") == 0  # the stream stayed in step: the pool's connection works
    assert _read(client, "RPOP", "q") is None
    assert _read(client, "BRPOP", "q", 0.1) is None  # a BRPOP that timed out
    client.set("not-a-list", "x")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        _read(client, "RPOP", "not-a-list")
    client.lpush("q", b"")
    assert _read(client, "BRPOP", "q", 1) == Popped(key=b"q", item=b"", size=0)


def test_queue_get_refuses_an_oversized_item_and_delivers_the_next(clean_redis: str) -> None:
    policy = transport.DeadLetterPolicy
    before = (policy.max_message_bytes, policy.max_raw_bytes, policy.max_entries, policy.events_maxlen)
    transport.install(max_message_bytes=LIMIT, max_raw_bytes=2048, max_entries=100)
    client = redis.Redis.from_url(clean_redis)
    kwargs = {"v": 1, "batch": "too-big", "params": {"labels": ["a", "b"]},
              "documents": [{"id": "d", "text": "x" * (2 * LIMIT)}]}
    big = foreign_message("docqueue.classify", "classify", kwargs, correlation_id="publisher-17")
    good = foreign_message("docqueue.classify", "classify", {**kwargs, "batch": "fits",
                                                             "documents": [{"id": "d", "text": "fine"}]})
    client.lpush("classify", big, good)  # the oversized one is popped first
    try:
        with Connection(clean_redis) as conn:
            message = Queue("classify", channel=conn.default_channel).get(no_ack=False, accept=["json"])
            assert message is not None and message.payload[1]["batch"] == "fits"
            message.ack()
    finally:
        (policy.max_message_bytes, policy.max_raw_bytes, policy.max_entries, policy.events_maxlen) = before
    [letter] = deadletter.entries(client)
    assert (letter.kind, letter.batch, letter.correlation_id) == ("message_too_large", "too-big", "publisher-17")
    assert letter.size == len(big) and letter.truncated
    [(_, event)] = client.xrange(rejections.STREAM)
    assert event[b"kind"] == b"message_too_large" and int(event[b"size"]) == len(big)
