"""Every error kind a worker can record has a metric series from the worker's start.

``workers.metrics.init_series`` creates ``docqueue_document_outcomes_total`` at 0 for each kind of
:func:`docqueue.errors.worker_error_kinds`; a kind missing there would be born at its first
failure, which ``increase()`` never sees. So every ``DocumentError("<kind>", ...)`` in the worker
code must be listed in docqueue/errors.py.
"""

from __future__ import annotations

import re

from docqueue.errors import LOADER_ERROR_KINDS, worker_error_kinds
from tests.conftest import ROOT

_RAISED = re.compile(r"DocumentError\(\s*\"([a-z_]+)\"")


def test_every_kind_a_worker_records_is_known() -> None:
    raised = {m for path in (ROOT / "workers").rglob("*.py") for m in _RAISED.findall(path.read_text())}
    assert raised, "the scan found no DocumentError at all"
    assert raised <= set(worker_error_kinds()), raised - set(worker_error_kinds())
    assert not set(worker_error_kinds()) & set(LOADER_ERROR_KINDS)


def test_init_series_creates_every_outcome_at_zero() -> None:
    from workers import metrics

    metrics.init_series(["classify"], ["classify"])
    samples = {(s.labels["status"], s.labels["error_kind"]): s.value
               for family in metrics.OUTCOMES.collect() for s in family.samples if s.name.endswith("_total")
               and s.labels["task"] == "classify"}
    # at 0 unless a test before this one in the same process already counted outcomes
    assert ("succeeded", "") in samples
    for kind in worker_error_kinds():
        assert ("failed", kind) in samples, kind
