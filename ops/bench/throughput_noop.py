"""A docqueue worker whose classify engine does no model work: the pure queue + database cost.

    python ops/bench/throughput_noop.py --queues classify --pool prefork --concurrency 2

Everything but the engine is the real worker (``python -m workers``): the same Celery settings,
claim, gathering and transactional recording. Only the registry's classify loader is replaced, in
this process before any fork, by one returning ``NoopEngine``. That engine is a test and benchmark
instrument, not a product feature: it lives in ``tests/faults/noop_worker.py``, shared with the
fault tests (which can also slow it down and log its runs).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.faults.noop_worker import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
