"""Documents that failed before reaching a queue, counted in Redis for ``docqueue metrics serve``.

A file the producer cannot read (``unsupported_format``, ``not_found``...) becomes a failed job at
submit time and no worker ever sees it, so no worker metric counts it. ``submit`` adds each such
failure to one Redis hash (field ``<task>|<error_kind>``); ``metrics serve`` exports the hash as the
counter ``docqueue_loader_failures_total``. Redis rather than a count of failed jobs in the
database: a hash read is constant-time per scrape, and purging old batches does not make the
counter go down (which ``increase()`` would misread as a reset).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

KEY = "docqueue:metrics:loader-failures"
_SEP = "|"


def record(client: Any, task: str, kinds: Iterable[str]) -> None:
    """Count one failure per item of ``kinds`` for ``task``. Best effort: a Redis error is logged,
    not raised, since the failures themselves are already stored with their batch."""
    counts = Counter(kinds)
    if not counts:
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            for kind, n in counts.items():
                pipe.hincrby(KEY, f"{task}{_SEP}{kind}", n)
            pipe.execute()
    except Exception:
        log.warning("could not count %d loader failure(s) for metrics", sum(counts.values()), exc_info=True)


def counts(client: Any) -> dict[tuple[str, str], int]:
    """(task, error_kind) -> failures counted so far."""
    out: dict[tuple[str, str], int] = {}
    for field, value in client.hgetall(KEY).items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        task, _, kind = name.partition(_SEP)
        out[(task, kind)] = int(value)
    return out
