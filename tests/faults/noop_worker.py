"""A real docqueue worker (``python -m workers``) whose classify engine does no model work.

    python -m tests.faults.noop_worker --queues classify --pool solo

Fault tests are about the queue and the database, not the model: the engine is swapped so that a
batch of hundreds of documents takes seconds on two shared cores and its pace is set by the test.
Everything else is the real worker: Celery settings, transport, claim, heartbeats, reaper, records.
Integration tests whose worker only has to consume the queue use it too (``tests.conftest.NOOP_WORKER``,
the session's ``shared_worker``): it is ready in about half the time of a worker loading MiniLM.

Test instrumentation, read from the environment here only (not product settings):

- ``DOCQUEUE_TEST_ENGINE_DELAY_S``: seconds each engine call sleeps (a slow model);
- ``DOCQUEUE_TEST_ENGINE_LOG``: a file each engine call appends its texts' first words to, one line
  per document, so a test can count how often each document was actually run.

Unset, the engine answers at once: ``ops/bench/throughput_noop.py`` runs this same worker to measure
the pure queue + database cost.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from docqueue.names import CLASSIFY
from workers import registry
from workers.__main__ import main
from workers.engines import Outcome, TaskEngine

DELAY_ENV = "DOCQUEUE_TEST_ENGINE_DELAY_S"
LOG_ENV = "DOCQUEUE_TEST_ENGINE_LOG"


class NoopEngine:
    """Answers every document with a result-shaped outcome after an optional pause."""

    model_id = "noop"
    model_revision = None

    def __init__(self) -> None:
        self.delay = float(os.environ.get(DELAY_ENV, "0") or 0)
        self.log = os.environ.get(LOG_ENV)

    def run(self, texts: Sequence[str], params: Mapping[str, Any]) -> list[Outcome]:
        if self.delay:
            time.sleep(self.delay)
        if self.log:
            # one write of whole lines (O_APPEND): lines of concurrent processes never interleave
            with open(self.log, "a", encoding="utf-8") as f:
                f.write("".join((t.split(" ", 1)[0] or "-") + "\n" for t in texts))
        return [{"label": "noop", "scores": {"noop": 1.0}} for _ in texts]


def _load_noop(_registry: registry.Registry, _spec: str, _revision: str | None) -> TaskEngine:
    return NoopEngine()


def run(argv: list[str]) -> int:
    """``python -m workers`` with the noop engine as classify's (swapped before any fork)."""
    registry.LOADERS[CLASSIFY] = _load_noop
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
