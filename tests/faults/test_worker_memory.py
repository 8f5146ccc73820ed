"""Worker memory stays bounded: real worker processes, real Redis and database.

- A child past the memory ceiling (``DOCQUEUE_WORKER_MAX_MEMORY_MB``, Celery's
  ``worker_max_memory_per_child``) is replaced after its task, and no message is lost.
- The biggest document the producer accepts (16,000,000 characters) is classified by a prefork
  child whose peak RSS grows by much less than the document's old cost, and whose RSS comes back.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from docqueue.db import get_engine
from docqueue.models import Job
from tests.conftest import service_env
from tests.helpers import cli_json, prose, wait_until
from workers.memory import proc_status_kib, reset_peak

WORDS = ["supplier", "shall", "deliver", "goods", "agreement", "party", "term", "notice", "payment", "within",
         "days", "order", "schedule", "invoice", "liability", "law", "governed", "state", "contract", "terminate"]
#: Loose bounds for a 16M-character document (before windowing: +2,040 MB peak, +1,010 MB kept).
PEAK_GROWTH_MB = 400
KEPT_GROWTH_MB = 150


def _jobs(url: str, batch: str) -> list[tuple[str, str, int | None, str | None]]:
    with get_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            sa.select(Job.status, Job.worker, Job.attempts, Job.error_kind).where(Job.batch_id == batch))]


def _done(url: str, batch: str, n: int) -> bool:
    jobs = _jobs(url, batch)
    return len(jobs) == n and all(j[0] in ("succeeded", "failed") for j in jobs)


def _pid(worker: str | None) -> int:
    assert worker and "/" in worker, worker
    return int(worker.rsplit("/", 1)[1])


def test_a_child_over_the_memory_ceiling_is_recycled_without_losing_its_message(
        sqlite_url: str, clean_redis: str, tmp_path: Path, start_worker) -> None:
    # 1 MiB: every child is over the ceiling once it has loaded its model, so each one runs exactly
    # one message and is then replaced
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_WORKER_MAX_MEMORY_MB="1",
                      DOCQUEUE_BATCH_MAX_DOCS="1", OMP_NUM_THREADS="1")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    n = 4
    for i in range(n):
        (inbox / f"doc{i}.txt").write_text(f"Invoice {i}: the amount of ${i}00.00 is due within 30 days.")
    batch = cli_json(env, "submit", "classify", str(inbox), "--labels", "contract,invoice", "--json")["batch"]
    worker = start_worker(env, pool="prefork", concurrency=1)
    wait_until(lambda: _done(sqlite_url, batch, n), timeout=300, what="every job to finish")
    jobs = _jobs(sqlite_url, batch)
    assert [j[0] for j in jobs] == ["succeeded"] * n, jobs  # one outcome each, none lost
    assert all(j[2] == 1 for j in jobs), jobs  # each ran once: no message came back for a second try
    pids = {_pid(j[1]) for j in jobs}
    assert len(pids) == n, jobs  # a fresh child for every message (with the default ceiling one child
    # runs message after message: the next test checks that the same child ran both of its documents)
    assert worker.proc.poll() is None  # the worker itself lives on
    assert cli_json(env, "status", batch, "--json")["succeeded"] == n


def test_the_biggest_accepted_document_keeps_the_child_bounded(
        sqlite_url: str, clean_redis: str, tmp_path: Path, start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, OMP_NUM_THREADS="1")
    warm = tmp_path / "warm.txt"
    warm.write_text(prose(20_000, WORDS, seed=1))
    first = cli_json(env, "submit", "classify", str(warm), "--labels", "contract,invoice", "--json")["batch"]
    start_worker(env, pool="prefork", concurrency=1)
    wait_until(lambda: _done(sqlite_url, first, 1), timeout=300, what="the warm-up document")
    [(status, owner, _, _)] = _jobs(sqlite_url, first)
    assert status == "succeeded"
    child = _pid(owner)
    before = proc_status_kib(child)["VmRSS"]
    assert reset_peak(child)  # VmHWM from here on is the big document's peak

    big = tmp_path / "big.txt"
    block = prose(1_000_000, WORDS, seed=2)
    text = (block + "\n\n") * (16_000_000 // (len(block) + 2))
    big.write_text(text[:16_000_000])  # the producer's max_document_chars (16,000,000) exactly
    del text, block
    batch = cli_json(env, "submit", "classify", str(big), "--labels", "contract,invoice", "--json")["batch"]
    wait_until(lambda: _done(sqlite_url, batch, 1), timeout=300, what="the 16M-character document")
    [(status, owner, _, kind)] = _jobs(sqlite_url, batch)
    assert status == "succeeded", kind
    assert _pid(owner) == child  # the same child ran it: its peak is this document's
    after = proc_status_kib(child)
    peak_mb, before_mb, after_mb = after["VmHWM"] / 1024, before / 1024, after["VmRSS"] / 1024
    print(f"\nchild RSS before {before_mb:.0f} MB, peak {peak_mb:.0f} MB, after {after_mb:.0f} MB "
          "(16,000,000 characters, classify, MiniLM)")
    assert peak_mb - before_mb < PEAK_GROWTH_MB, (before_mb, peak_mb)
    assert after_mb - before_mb < KEPT_GROWTH_MB, (before_mb, after_mb)
