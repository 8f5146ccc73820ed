"""A big inline message is split into micro-batches on receipt (issue 23, item 5).

A 20,000-document inline message ran as one 753-second task while a second worker sat idle, with
no result visible for 12.5 minutes. Here two real workers (noop engine, 0.3 s per engine call) and
``DOCQUEUE_BATCH_MAX_DOCS=20`` take one inline message of 160 documents, one of them invalid and one
a repeat: the message becomes 8 messages of 20, both workers run some, every document has one
outcome, the rejected ones theirs, and every job keeps the publisher's correlation id.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from docqueue.db import get_engine
from docqueue.models import Job
from tests.conftest import service_env
from tests.helpers import cli_json, start_workers, wait_until
from tests.integration.test_foreign_publisher import foreign_message

pytestmark = pytest.mark.integration

N = 160


def test_a_big_inline_message_spreads_over_the_workers(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                       start_worker: Any) -> None:
    runs = tmp_path / "runs.log"
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_BATCH_MAX_DOCS="20",
                      DOCQUEUE_TEST_ENGINE_DELAY_S="0.3", DOCQUEUE_TEST_ENGINE_LOG=str(runs))
    workers = start_workers(start_worker, env, 2, module="tests.faults.noop_worker")
    documents: list[dict[str, Any]] = [{"id": f"d{i}", "text": f"d{i} invoice {i}"} for i in range(N)]
    documents += [{"id": "", "text": "no usable id"}, {"id": "d0", "text": "d0 again, other text"}]
    client = redis.Redis.from_url(clean_redis)
    client.lpush("classify", foreign_message("docqueue.classify", "classify", {
        "v": 1, "batch": "big-inline", "params": {"labels": ["contract", "invoice"]}, "documents": documents},
        correlation_id="req-big"))
    wait_until(lambda: (s := cli_json(env, "status", "big-inline", "--json"))["total"] == N + 2
               and s["succeeded"] + s["failed"] == N + 2, timeout=300, what="every document's outcome")
    status = cli_json(env, "status", "big-inline", "--json")
    assert (status["succeeded"], status["failed"]) == (N, 2)
    with get_engine(sqlite_url).connect() as conn:
        rows = conn.execute(sa.select(Job.worker, Job.correlation_id, Job.error_kind)
                            .where(Job.batch_id == "big-inline")).all()
    by_worker = Counter(str(w).rsplit("/", 1)[-1] for w, _, kind in rows if kind is None)
    assert set(by_worker) == {str(w.proc.pid) for w in workers}, by_worker  # both took a share
    assert {c for _, c, _ in rows} == {"req-big"}
    assert sorted(str(k) for _, _, k in rows if k) == ["duplicate_document", "invalid_document"]
    assert Counter(runs.read_text().split()) == Counter({f"d{i}": 1 for i in range(N)})
    assert any("split 160 inline documents of batch big-inline into messages of 20" in w.log() for w in workers)
