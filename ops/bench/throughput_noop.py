"""A docqueue worker whose classify engine does no model work: the pure queue + database cost.

    python ops/bench/throughput_noop.py --queues classify --pool prefork --concurrency 2

Everything but the engine is the real worker (``python -m workers``): the same Celery settings,
claim, gathering and transactional recording. Only the registry's classify loader is replaced, in
this process before any fork, by one returning :class:`NoopEngine`. This is a benchmark instrument,
not a product feature, so it lives here and not among the engines.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from docqueue.names import CLASSIFY
from workers import registry
from workers.__main__ import main
from workers.engines import Outcome, TaskEngine


class NoopEngine:
    """Answers every document at once with a fixed, result-shaped outcome."""

    model_id = "bench-noop"
    model_revision = None

    def run(self, texts: Sequence[str], params: Mapping[str, Any]) -> list[Outcome]:
        return [{"label": "noop", "scores": {"noop": 1.0}} for _ in texts]


def _load_noop(_registry: registry.Registry, _spec: str, _revision: str | None) -> TaskEngine:
    return NoopEngine()


if __name__ == "__main__":
    registry.LOADERS[CLASSIFY] = _load_noop
    sys.exit(main(sys.argv[1:]))
