"""Scale-out: docs/s with 1, 2 and 4 worker processes against one PostgreSQL and one Redis.

    python ops/bench/scale.py                       # noop engine and MiniLM, 1/2/4 workers
    python ops/bench/scale.py --workers 1,2 --minilm-docs 200 --noop-docs 2000   # shorter

Each step starts N separate workers (``--pool solo``, one single-threaded process each, as N pods
would run), submits one batch through the real producer path (``submit_batch``), and takes docs/s
from the first enqueue to the last stored result (its ``finished_at``). Two engines:

* ``noop``: the real worker with an engine that does no model work (``throughput_noop.py``): what
  is left is queue + database cost, so this is where Redis or PostgreSQL would become the limit;
* ``minilm``: zero-shot classify with the shipped MiniLM, short synthetic texts.

Scaling efficiency is ``rate(N) / (N x rate(1))``. During each run the script also samples
PostgreSQL commits/s (``pg_stat_database``) and Redis commands/s (``INFO stats``), to show how far
from their limits the services ran. It needs as many free cores as workers to mean anything: the
core count is printed next to the figures. The database is a fresh PostgreSQL database of its own
(dropped after); Redis uses a DB number taken with the test suite's lock scheme.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import click
import psycopg
import redis
from celery.signals import before_task_publish
from throughput_services import Process, python_argv, redis_db, service_env, wait_finished

from docqueue import db
from docqueue.queue import make_celery
from docqueue.settings import get_settings
from producer.loaders import LoadedDocument
from producer.submit import submit_batch
from workers.device import usable_cores

WORDS = ("the", "supplier", "shall", "deliver", "goods", "within", "thirty", "days", "invoice", "payment", "due",
         "upon", "receipt", "termination", "notice", "confidential", "information", "licensee", "royalties",
         "quarterly", "warranty")
PARAMS = {"labels": ["payment", "delivery", "termination", "confidentiality"]}


def texts(n: int, seed: int = 7) -> list[str]:
    """Short contract-like sentences of 8-40 words (deterministic)."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))) + "." for _ in range(n)]


class Sampler:
    """PostgreSQL commits and Redis commands between two points in time."""

    def __init__(self, pg_admin: str, database: str, redis_url: str) -> None:
        self.pg_admin, self.database = pg_admin, database
        self.redis = redis.Redis.from_url(redis_url)

    def _read(self) -> tuple[float, int, int]:
        with psycopg.connect(self.pg_admin, autocommit=True) as conn:
            commits = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                                   (self.database,)).fetchone()
        return time.time(), int(commits[0]) if commits else 0, int(self.redis.info("stats")["total_commands_processed"])

    def start(self) -> None:
        self._t0 = self._read()

    def rates(self) -> tuple[float, float]:
        t1 = self._read()
        dt = max(t1[0] - self._t0[0], 1e-6)
        return (t1[1] - self._t0[1]) / dt, (t1[2] - self._t0[2]) / dt


def run_step(engine_name: str, n_workers: int, docs: list[str], *, redis_url: str, database_url: str,
             workdir: Path, max_docs: int, sampler: Sampler, say: Any) -> dict[str, Any]:
    env = service_env(redis_url, database_url, workdir / "data", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    argv_of = {
        "noop": lambda: python_argv("ops/bench/throughput_noop.py", "--queues", "classify", "--pool", "solo"),
        "minilm": lambda: [sys.executable, "-m", "workers", "--queues", "classify", "--pool", "solo"],
    }
    procs = [Process(f"{engine_name}-{n_workers}-{i}", argv_of[engine_name](), env, workdir) for i in range(n_workers)]
    try:
        for p in procs:
            p.wait_for(" ready.", timeout=600)
        settings = get_settings(database_url=database_url, redis_url=redis_url).model_copy(
            update={"batch_max_docs": max_docs})
        engine = db.get_engine(database_url)
        app = make_celery(settings, redis_url)
        first: list[float] = []

        def on_publish(**_: Any) -> None:
            if not first:
                first.append(time.time())

        before_task_publish.connect(on_publish, weak=False)
        # warm-up: every worker runs a message before the clock starts
        warm = [LoadedDocument(source=f"w{i}", text=t) for i, t in enumerate(docs[: max_docs * n_workers * 2])]
        r = submit_batch(settings=settings, engine=engine, app=app, task="classify", documents=iter(warm),
                         params=PARAMS, force=True)
        wait_finished(engine, r.batch_id, len(warm), timeout=600)
        first.clear()
        sampler.start()
        report = submit_batch(settings=settings, engine=engine, app=app, task="classify", params=PARAMS, force=True,
                              documents=(LoadedDocument(source=str(i), text=t) for i, t in enumerate(docs)))
        _, last = wait_finished(engine, report.batch_id, len(docs), timeout=1800)
        pg_commits, redis_cmds = sampler.rates()
        before_task_publish.disconnect(on_publish)
        rate = len(docs) / (last - first[0])
        say(f"  {engine_name:<6} workers={n_workers}  {rate:9.1f} docs/s   postgres {pg_commits:7.0f} commits/s   "
            f"redis {redis_cmds:7.0f} commands/s")
        return {"engine": engine_name, "workers": n_workers, "docs": len(docs), "docs_per_s": round(rate, 1),
                "pg_commits_per_s": round(pg_commits), "redis_commands_per_s": round(redis_cmds)}
    finally:
        for p in procs:
            p.stop()


@click.command()
@click.option("--workers", "counts", default="1,2,4", help="Worker process counts to run.")
@click.option("--noop-docs", default=6000, help="Documents per noop run.")
@click.option("--minilm-docs", default=600, help="Documents per MiniLM run.")
@click.option("--max-docs", default=32, help="Documents per queue message (DOCQUEUE_BATCH_MAX_DOCS for the run).")
@click.option("--engines", default="noop,minilm", help="Which engines to run.")
@click.option("--pg", "pg_admin", default=os.environ.get("DOCQUEUE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
              help="PostgreSQL admin URL; a database of the benchmark's own is created there.")
@click.option("--redis-host", default=os.environ.get("DOCQUEUE_TEST_REDIS", "redis://127.0.0.1:6379"))
@click.option("--json-out", type=click.Path(path_type=Path), default=None, help="Also write the figures as JSON.")
def main(counts: str, noop_docs: int, minilm_docs: int, max_docs: int, engines: str, pg_admin: str, redis_host: str,
         json_out: Path | None) -> None:
    ns = [int(c) for c in counts.split(",")]
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    cores = usable_cores()
    say(f"scale: {cores} usable core(s) on this machine; worker counts {ns}; {max_docs} documents per message")
    name = f"docqueue_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    rows: list[dict[str, Any]] = []
    try:
        db.upgrade(database_url)
        with redis_db(redis_host) as redis_url, tempfile.TemporaryDirectory() as tmp:
            sampler = Sampler(pg_admin, name, redis_url)
            for engine_name in engines.split(","):
                docs = texts(noop_docs if engine_name == "noop" else minilm_docs)
                for n in ns:
                    rows.append(run_step(engine_name, n, docs, redis_url=redis_url, database_url=database_url,
                                         workdir=Path(tmp), max_docs=max_docs, sampler=sampler, say=say))
    finally:
        db.get_engine(database_url).dispose()
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for engine_name in {r["engine"] for r in rows}:
        mine = [r for r in rows if r["engine"] == engine_name]
        base = next((r["docs_per_s"] for r in mine if r["workers"] == 1), None)
        for r in mine:
            r["efficiency"] = None if not base else round(r["docs_per_s"] / (r["workers"] * base), 2)
    for r in rows:
        click.echo(f"scale engine={r['engine']} workers={r['workers']} docs_per_s={r['docs_per_s']} "
                   f"efficiency={r['efficiency']} pg_commits_per_s={r['pg_commits_per_s']} "
                   f"redis_commands_per_s={r['redis_commands_per_s']} cores={cores}")
    if json_out:
        json_out.write_text(json.dumps({"cores": cores, "max_docs": max_docs, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
