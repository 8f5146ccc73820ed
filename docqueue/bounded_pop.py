"""Reading a popped Redis item without holding more of it than the limit (issue 23, item 6).

Redis has no length for a list element short of reading it, and BRPOP, the only way to wait on
several lists, removes the item and sends all of it. redis-py then reads the whole reply into its
buffer, copies it out, and kombu decodes it: a 280 MB item cost a worker 820 MB before the size
check ran. Here the reply of a ``BRPOP`` (or ``RPOP``) is read from the connection's socket by a
small RESP reader: the length of the item comes first (``$<n>``), so an item over the limit is
streamed through, keeping only its first and last bytes (enough for the dead letter and for
:func:`docqueue.envelope.identify` to find its batch and correlation id), and the worker's memory
grows by at most about the limit whatever the item's size. An item within the limit is read whole,
exactly as before.

The reader replaces redis-py's parser for these replies only, and only where that parser is the
pure-Python one with nothing buffered (the transport asks for that parser; a BRPOP connection never
has a reply waiting besides BRPOP's own): anywhere else :class:`NotBounded` is raised before
anything is read, and the caller reads the reply the usual, unbounded way.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis._parsers.socket import SocketBuffer

#: Bytes asked of the socket per ``recv`` while streaming an item through.
CHUNK = 256 * 1024
#: Longest RESP header line (``*2``, ``$123``, an error) accepted before the reply is called corrupt.
MAX_LINE = 64 * 1024


class NotBounded(Exception):
    """The connection's parser is not one this reader can stand in for; nothing was read."""


@dataclass(frozen=True)
class Popped:
    """One popped item: ``item`` whole when at most the limit, else None with its ``size`` and a
    ``sample``: its first ``head`` bytes followed by its last ``tail`` bytes."""

    key: bytes | None
    item: bytes | None
    size: int
    sample: bytes = b""


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(CHUNK)
        if not data:
            raise redis.exceptions.ConnectionError("Connection closed by server.")
        self.buf += data

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            if len(self.buf) > MAX_LINE:
                raise redis.exceptions.InvalidResponse("Protocol error: a header line without its end")
            self._fill()
        out = bytes(self.buf[:end])
        del self.buf[:end + 2]
        return out

    def take(self, n: int) -> bytes:
        """Exactly ``n`` bytes (read into one buffer of that size: no growing copies)."""
        out = bytearray(n)
        have = min(n, len(self.buf))
        out[:have] = self.buf[:have]
        del self.buf[:have]
        view = memoryview(out)
        while have < n:
            got = self.sock.recv_into(view[have:], min(n - have, CHUNK))
            if not got:
                raise redis.exceptions.ConnectionError("Connection closed by server.")
            have += got
        return bytes(out)

    def skip(self, n: int) -> None:
        """Discard ``n`` bytes without holding more than one chunk of them."""
        while n > 0:
            if not self.buf:
                self._fill()
            k = min(n, len(self.buf))
            del self.buf[:k]
            n -= k


def _usable(connection: Any) -> bool:
    buffer = getattr(getattr(connection, "_parser", None), "_buffer", None)
    return (isinstance(buffer, SocketBuffer) and buffer.unread_bytes() == 0
            and getattr(connection, "_sock", None) is not None)


def _bulk(reader: _Reader, header: bytes, limit: int, head: int, tail: int) -> tuple[bytes | None, int, bytes]:
    """(whole item or None, size, sample) of the bulk string announced by ``header``."""
    if header[:1] != b"$":
        raise redis.exceptions.InvalidResponse(f"Protocol error: expected a bulk string, got {header[:40]!r}")
    size = int(header[1:])
    if size <= limit:
        data = reader.take(size)
        reader.take(2)
        return data, size, b""
    first = reader.take(min(head, size))
    middle = size - len(first) - min(tail, size - len(first))
    reader.skip(middle)
    last = reader.take(size - len(first) - middle)
    reader.take(2)
    return None, size, first + last


def read_pop(connection: Any, *, limit: int, head: int, tail: int) -> Popped | None:
    """The reply of the ``BRPOP`` or ``RPOP`` just sent on ``connection``: None for no item (a BRPOP
    that timed out, an empty list), else the :class:`Popped` item. An error reply is raised as
    redis-py raises it; a broken connection as :class:`redis.exceptions.ConnectionError`, with the
    connection disconnected (the item, if any was popped, is lost to Redis as with redis-py's own
    reader). :class:`NotBounded` where this reader cannot take the parser's place."""
    if not _usable(connection):
        raise NotBounded()
    reader = _Reader(connection._sock)
    try:
        first = reader.line()
        kind = first[:1]
        if kind == b"-":
            error = connection._parser.parse_error(first[1:].decode("utf-8", "replace"))
            raise error
        if first in (b"*-1", b"$-1", b"_"):
            popped = None
        elif kind == b"*":
            if first != b"*2":
                raise redis.exceptions.InvalidResponse(f"Protocol error: BRPOP replied {first[:40]!r}")
            key_header = reader.line()
            key, _, _ = _bulk(reader, key_header, MAX_LINE, 0, 0)
            item, size, sample = _bulk(reader, reader.line(), limit, head, tail)
            popped = Popped(key=key, item=item, size=size, sample=sample)
        else:
            item, size, sample = _bulk(reader, first, limit, head, tail)
            popped = Popped(key=None, item=item, size=size, sample=sample)
    except redis.exceptions.ResponseError:
        raise
    except (OSError, ValueError, redis.exceptions.RedisError) as e:
        connection.disconnect()
        if isinstance(e, redis.exceptions.RedisError):
            raise
        raise redis.exceptions.ConnectionError(f"Error while reading a popped item: {e}") from e
    if reader.buf:  # nothing else was asked for: bytes past the reply mean the stream is out of step
        connection.disconnect()
        raise redis.exceptions.ConnectionError(f"{len(reader.buf)} unexpected bytes after a popped item")
    if getattr(connection, "health_check_interval", 0):
        connection.next_health_check = time.monotonic() + connection.health_check_interval
    return popped
