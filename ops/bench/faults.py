"""Fault benchmark: inject the faults docqueue promises to survive and count what they cost.

    python ops/bench/faults.py --docs 1000

Scenarios, each on a batch of ``--docs`` documents run by two real workers (``python -m
workers`` with the classify engine swapped for one that does no model work,
``tests/faults/noop_worker.py``, so that the queue and the database are what is measured), on a
redis-server (append-only file) and a PostgreSQL cluster of the benchmark's own
(``tests/faults/servers.py``; root runs the cluster as the postgres user):

- ``kill -9``: SIGKILL one worker's whole process tree mid-batch and start a new one, three times;
- ``redis restart``: ``SHUTDOWN`` the broker mid-batch, start it again on the same files;
- ``postgres restart``: ``pg_ctl stop -m fast`` mid-batch, start it again after a pause;
- ``maxmemory``: ``CONFIG SET maxmemory`` below what Redis uses (``noeviction``) for 5 s mid-batch:
  every write that needs memory is refused, including kombu's ``unacked`` record after a BRPOP;
- ``vanished``: the queue's list is deleted mid-batch (what a Redis without persistence that
  restarts, or a failover that drops the last writes, does to it): only the reaper's look for
  queued jobs with no message anywhere (``DOCQUEUE_QUEUED_LOST_AFTER_S``, 5 s here) brings them back;
- ``oversized``: two items over ``DOCQUEUE_MAX_MESSAGE_BYTES`` (100 and 280 MB) pushed mid-batch;
  each is a dead letter (``ops/bench/oversized_item.py`` measures what one costs the worker);
- ``poison``: schema-valid messages that used to kill a worker (metadata 700 levels deep, a param
  100,000 levels deep, lone surrogates, NUL) pushed mid-batch; ``exits`` counts worker processes
  that died (each used to die on the deep ones, and the next one that took the message).

Columns: ``lost``: documents without an outcome at the end; ``stored twice``: outcomes beyond one
per document; ``exits``: worker processes that died during the scenario; ``run twice``:
documents the engine ran more than once (at-least-once execution
allows it, the stored outcome stays one); ``recovery s``: from the fault (the kill, or the server
back up) until outcomes are stored again and every job that was running when it struck has
finished or been requeued, worst of the injections. Timing settings are the fault tests'
(heartbeat 1 s, timeout 5 s, reaper every 2 s, visibility timeout 30 s), not the defaults; with
the defaults a kill's recovery is bounded by the heartbeat timeout plus a reaper interval (60 +
15 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from docqueue.db import get_engine  # noqa: E402
from docqueue.models import Job  # noqa: E402
from tests.faults.servers import AofRedis, OwnPostgres  # noqa: E402

KILLS = 3


@dataclass
class Row:
    fault: str
    injected: int = 0
    documents: int = 0
    lost: int = 0
    stored_twice: int = 0
    run_twice: int = 0
    exits: int = 0
    recoveries: list[float] = field(default_factory=list)


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.faults.noop_worker", "--queues", "classify",
                                      "--pool", "solo", "--loglevel", "info"], env=env, cwd=ROOT,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def ready(self, timeout: float = 180) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log_path.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError("worker not ready")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def _try(read: Callable[[], Any], default: Any) -> Any:
    try:
        return read()
    except sa.exc.OperationalError:  # the benchmark's own reads meet the PostgreSQL outage too
        return default


def _wait(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


class Run:
    """One scenario: its batch, its workers, and the database it polls."""

    def __init__(self, name: str, redis: AofRedis, pg: OwnPostgres, work: Path, docs: int, delay: float) -> None:
        self.name, self.redis, self.pg, self.docs = name, redis, pg, docs
        self.dir = work / f"scenario-{name}"
        self.dir.mkdir()
        self.runs_log = self.dir / "engine-runs.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQUEUE_")}
        self.env.update({"REDIS_URL": redis.url, "DATABASE_URL": pg.url, "DOCQUEUE_DATA_DIR": str(self.dir),
                         "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                         "DOCQUEUE_BATCH_MAX_DOCS": "10", "DOCQUEUE_HEARTBEAT_INTERVAL_S": "1",
                         "DOCQUEUE_HEARTBEAT_TIMEOUT_S": "5", "DOCQUEUE_REAPER_INTERVAL_S": "2",
                         "DOCQUEUE_VISIBILITY_TIMEOUT": "30", "DOCQUEUE_TEST_ENGINE_DELAY_S": str(delay),
                         "DOCQUEUE_QUEUED_LOST_AFTER_S": "5",
                         "DOCQUEUE_TEST_ENGINE_LOG": str(self.runs_log), "PYTHONPATH": str(ROOT)})
        self.db = get_engine(pg.url)
        self.workers: list[Worker] = []
        self.batch = ""

    def cli(self, *args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "producer.cli", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"docqueue {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def start(self) -> None:
        self.workers = [Worker(self.env, self.dir / f"worker-{i}.log") for i in range(2)]
        for w in self.workers:
            w.ready()
        rows = self.dir / "rows.jsonl"
        rows.write_text("".join(json.dumps({"id": f"d{i}", "text": f"d{i} invoice {i}, amount due ${i}.00."})
                                + "\n" for i in range(self.docs)))
        self.batch = json.loads(self.cli("submit", "classify", str(rows), "--id-field", "id", "--labels",
                                         "contract,invoice", "--json"))["batch"]

    def succeeded(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(
                Job.batch_id == self.batch, Job.status == "succeeded")).scalar_one())

    def running(self) -> set[tuple[str, str, int]]:
        with self.db.connect() as conn:
            return {(i, w, a) for i, w, a in conn.execute(sa.select(Job.id, Job.worker, Job.attempts).where(
                Job.batch_id == self.batch, Job.status == "running")).all()}

    def progressed(self, by: int) -> bool:
        """Wait for ``by`` more outcomes with jobs running; False when the batch ended first."""
        start = _try(self.succeeded, 0)
        _wait(lambda: _try(self.succeeded, 0) >= self.docs or (
            _try(self.succeeded, 0) >= start + by and bool(_try(self.running, set()))), 300, "the batch to be mid-way")
        return _try(self.succeeded, 0) < self.docs

    def recovered_since(self, held: set[tuple[str, str, int]], since: float) -> float:
        """Seconds from ``since`` until outcomes are stored again and no job in ``held`` is still
        running as it was then (finished, or requeued by the reaper)."""
        base = _try(self.succeeded, 0)
        _wait(lambda: (_try(self.succeeded, 0) > base or base >= self.docs)
              and not (held & _try(self.running, held)), 300, "the batch to go on after the fault", 0.05)
        return time.monotonic() - since

    def finish(self, row: Row) -> Row:
        with contextlib.suppress(RuntimeError):  # what is missing then is counted as lost
            _wait(lambda: _try(self.succeeded, 0) == self.docs, 300, "every document", 0.2)
        with self.db.connect() as conn:
            jobs, distinct, done = conn.execute(sa.select(
                sa.func.count(), sa.func.count(sa.distinct(Job.document_id)),
                sa.func.count().filter(Job.status.in_(("succeeded", "failed")))).where(
                Job.batch_id == self.batch)).one()
        ran = Counter(self.runs_log.read_text().split()) if self.runs_log.exists() else Counter()
        row.documents = self.docs
        row.lost = self.docs - int(done)
        row.stored_twice = int(jobs) - int(distinct)
        row.run_twice = sum(1 for n in ran.values() if n > 1)
        row.exits += sum(1 for w in self.workers if w.proc.poll() is not None)
        for w in self.workers:
            w.stop()
        return row


def kill_scenario(run: Run) -> Row:
    row = Row("kill -9 (worker tree)")
    run.start()
    for attempt in range(KILLS * 3):
        if row.injected == KILLS:
            break
        if not run.progressed(by=max(20, run.docs // 10)):
            break  # the batch ended before the third kill: the table says how many landed
        victim = run.workers[attempt % 2]
        held = {j for j in run.running() if j[1] and j[1].endswith(f"/{victim.proc.pid}")}
        victim.kill()
        killed_at = time.monotonic()
        run.workers[attempt % 2] = Worker(run.env, run.dir / f"worker-r{attempt}.log")
        if not held:
            continue  # the kill fell between two messages: not one of the three
        row.injected += 1
        row.recoveries.append(run.recovered_since(held, killed_at))
        run.workers[attempt % 2].ready()
    return run.finish(row)


def _restart_scenario(run: Run, fault: str, stop: Callable[[], None], start: Callable[[], None],
                      down_s: float) -> Row:
    """Take a service down mid-batch for ``down_s`` seconds, bring it back, measure the recovery."""
    row = Row(fault)
    run.start()
    if not run.progressed(by=max(20, run.docs // 5)):
        raise RuntimeError("the batch ended before the fault; use more --docs or a longer --delay")
    held = run.running()
    stop()
    time.sleep(down_s)
    start()
    row.injected = 1
    row.recoveries.append(run.recovered_since(held, time.monotonic()))
    return run.finish(row)


def redis_scenario(run: Run) -> Row:
    return _restart_scenario(run, "redis restart (SHUTDOWN, AOF)", run.redis.shutdown, run.redis.start, 3)


def postgres_scenario(run: Run) -> Row:
    def stop() -> None:
        run.db.dispose()
        run.pg.stop()

    return _restart_scenario(run, "postgres restart (-m fast)", stop, run.pg.start, 5)


def maxmemory_scenario(run: Run) -> Row:
    def full() -> None:
        client = run.redis.client()
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", str(max(1, int(client.info("memory")["used_memory"]) - 64 * 1024)))

    def back() -> None:
        run.redis.client().config_set("maxmemory", "0")

    return _restart_scenario(run, "redis at maxmemory (5 s)", full, back, 5)


def vanished_scenario(run: Run) -> Row:
    def vanish() -> None:
        run.redis.client().delete("classify")

    return _restart_scenario(run, "queue list deleted", vanish, lambda: None, 0)


def poison_scenario(run: Run) -> Row:
    from tests.faults.test_crashing_messages import _deep, _deep_param_item, _inline

    def push() -> None:
        client = run.redis.client()

        def good(batch: str) -> dict[str, str]:  # its own first word: the engine log counts runs by it
            return {"id": "good", "text": f"{batch}-good"}

        for item in (_inline("p-deep", [{"id": "deep", "text": "x", "metadata": _deep(700)}, good("p-deep")]),
                     _deep_param_item(),
                     _inline("p-surrogate", [{"id": "s", "text": "bad \ud800"}, good("p-surrogate")]),
                     _inline("p-nul", [{"id": "n\x00", "text": "x"}, good("p-nul")])):
            client.rpush("classify", item)  # taken next, ahead of the batch's own messages

    row = _restart_scenario(run, "crashing messages x4", push, lambda: None, 0)
    row.injected = 4
    return row


def oversized_scenario(run: Run) -> Row:
    """Two items over DOCQUEUE_MAX_MESSAGE_BYTES (100 and 280 MB) pushed mid-batch: each is refused
    (a dead letter) while the batch goes on; ``ops/bench/oversized_item.py`` measures the memory."""
    from tests.integration.test_foreign_publisher import foreign_message

    def push() -> None:
        client = run.redis.client()
        for mb in (100, 280):
            kwargs = {"v": 1, "batch": f"big-{mb}", "params": {"labels": ["contract", "invoice"]},
                      "documents": [{"id": "big", "text": "x" * (mb * 10**6 * 3 // 4)}]}
            client.rpush("classify", foreign_message("docqueue.classify", "classify", kwargs))

    row = _restart_scenario(run, "oversized items (100, 280 MB)", push, lambda: None, 0)
    row.injected = 2
    return row


def table(rows: list[Row]) -> str:
    head = "| fault | injected | documents | lost | stored twice | exits | run twice | recovery s (worst) |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        worst = max(r.recoveries) if r.recoveries else float("nan")
        each = ", ".join(f"{x:.1f}" for x in r.recoveries)
        lines.append(f"| {r.fault} | {r.injected} | {r.documents} | {r.lost} | {r.stored_twice} | {r.exits} "
                     f"| {r.run_twice} | {worst:.1f} ({each}) |")
    return "\n".join(lines)


SCENARIOS: dict[str, Callable[[Run], Row]] = {
    "kill": kill_scenario, "redis": redis_scenario, "postgres": postgres_scenario, "maxmemory": maxmemory_scenario,
    "vanished": vanished_scenario, "poison": poison_scenario, "oversized": oversized_scenario}


@click.command()
@click.option("--docs", type=int, default=1000, show_default=True, envvar="DOCQUEUE_BENCH_FAULT_DOCS",
              show_envvar=True, help="Documents per scenario.")
@click.option("--delay", type=float, default=0.2, show_default=True, envvar="DOCQUEUE_BENCH_FAULT_DELAY_S",
              show_envvar=True, help="Seconds the engine spends per message (10 documents), so faults land mid-batch.")
@click.option("--only", type=click.Choice(sorted(SCENARIOS)), multiple=True, envvar="DOCQUEUE_BENCH_FAULT_ONLY",
              show_envvar=True, help="Run only these scenarios (repeatable) [default: all].")
def main(docs: int, delay: float, only: tuple[str, ...]) -> None:
    """Inject kill -9 x3, a Redis restart, a PostgreSQL restart, Redis at maxmemory, a deleted queue,
    crashing messages and oversized items; print what each cost."""
    work = Path(tempfile.mkdtemp(prefix="docqueue-bench-faults-"))
    redis = AofRedis(work / "redis-server").start()
    pg = OwnPostgres().init()
    rows = []
    try:
        env = {**os.environ, "DATABASE_URL": pg.url, "REDIS_URL": redis.url}
        subprocess.run([sys.executable, "-m", "producer.cli", "db", "upgrade"], env=env, cwd=ROOT, check=True,
                       capture_output=True)
        for name in only or tuple(SCENARIOS):
            redis.client().flushall()
            click.echo(f"scenario {name} ...", err=True)
            rows.append(SCENARIOS[name](Run(name, redis, pg, work, docs, delay)))
    finally:
        get_engine(pg.url).dispose()
        redis.stop()
        pg.destroy()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    click.echo(f"fault benchmark {stamp}, {os.cpu_count()} CPUs ({platform.machine()}), {docs} documents per "
               f"scenario, 2 solo workers, noop engine {delay} s per message (logs under {work})")
    click.echo(table(rows))


if __name__ == "__main__":
    main()
