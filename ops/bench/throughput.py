"""Throughput of docqueue against the model fed directly and against one Celery task per document.

    python ops/bench/throughput.py                 # full run (about 10 minutes on 2 quiet cores)
    python ops/bench/throughput.py --quick         # a short run while developing

For each corpus (``short``: Tatoeba sentences, ``medium``: LEDGAR provisions, from ``--data``) it
prints documents per second for

* ``raw``: the same classify engine in-process, best of length-sorted batches of 8/16/32/64 (one
  forward pass each) on all cores and of one single-threaded process per core (batch 1, and sorted
  batches cut by the engine's forward-pass token budget as in a worker);
* ``docqueue``: submit -> worker(s) -> results in the database, from the first enqueue (the
  documents' rows are stored just before) to the moment the last result was stored (its
  ``finished_at``), with the recommended worker
  configuration (``--pool``/``--concurrency``; default prefork, one single-threaded child per core);
* ``naive``: one plain Celery task per document on the same Redis, model cached per process, each
  result written to the same database; best of a solo worker (all threads) and prefork (one child
  per core, one thread each);

then ``noop`` (docqueue with an engine that does no model work: the queue + database cost), the
ratios, ``submit_docs_per_s`` (``docqueue submit`` of ``--submit-docs`` small documents from a JSONL
file, no worker running) with the producer's peak RSS, and one last line::

    throughput docqueue/raw=R docqueue/naive=N short_docqueue/naive=S noop_docs_per_s=X submit_docs_per_s=Y

(R and N on the medium corpus). Every configuration runs once; the two best raw configurations, the
best naive one and docqueue then run until each has ``--repeats`` runs, back to back, round by
round. docs/s figures are medians; a ratio is the median over rounds of docqueue's figure over the
round's best raw (or the naive) figure: runs seconds apart, so the load of a shared machine mostly
cancels out. It uses a Redis DB number of its own (the test
suite's lock scheme), a temporary SQLite database unless ``--database-url`` is given, and starts and
stops its own worker processes.
"""

from __future__ import annotations

import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import redis
import sqlalchemy as sa
from celery.signals import before_task_publish
from sqlalchemy.engine import Engine
from throughput_corpora import Corpus, load_corpus
from throughput_naive import enqueue as naive_enqueue
from throughput_naive import make_app as naive_app
from throughput_raw import ProcessPerCore, load_engine, time_in_process
from throughput_runtimes import RUNTIMES, available
from throughput_runtimes import measure as measure_runtimes
from throughput_runtimes import report as report_runtimes
from throughput_services import ROOT, Process, python_argv, redis_db, service_env, wait_finished, wait_quiet

from docqueue import db
from docqueue.models import Batch, Document, Job, utcnow
from docqueue.queue import make_celery
from docqueue.schema import new_id
from docqueue.settings import get_settings
from producer.loaders import LoadedDocument
from producer.submit import submit_batch
from workers.device import usable_cores

RAW_BATCHES = (8, 16, 32, 64)
MP_SORTED_BATCH = 32


@dataclass
class Runs:
    """Docs/s of the runs of one configuration."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else 0.0


@dataclass
class Bench:
    """Everything one benchmark run holds: services, workers, results."""

    database_url: str
    redis_url: str
    workdir: Path
    processes: int
    pool: str
    concurrency: int
    say: Callable[[str], None]
    workers: dict[str, Process] = field(default_factory=dict)
    results: dict[tuple[str, str], Runs] = field(default_factory=dict)
    #: corpus -> (best raw configuration, best naive configuration, docqueue/raw, docqueue/naive)
    ratios: dict[str, tuple[str, str, float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.settings = get_settings(database_url=self.database_url, redis_url=self.redis_url)
        self.db: Engine = db.get_engine(self.database_url)
        self.app = make_celery(self.settings, self.redis_url)
        self.naive = naive_app(self.redis_url)
        self._first_publish: float | None = None
        before_task_publish.connect(self._on_publish, weak=False)

    def env(self, **extra: str) -> dict[str, str]:
        return service_env(self.redis_url, self.database_url, self.workdir / "data", **extra)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.workers[name] = Process(name, argv, env, self.workdir)

    def stop(self, *names: str) -> None:
        for name in names:
            proc = self.workers.pop(name, None)
            if proc is not None:
                proc.stop()

    def record(self, corpus: str, config: str, docs_per_s: float) -> None:
        self.results.setdefault((corpus, config), Runs()).values.append(docs_per_s)
        self.say(f"  {corpus:<6} {config:<22} {docs_per_s:9.1f} docs/s")

    # ----------------------------------------------------------------------------- measurements
    def docqueue_run(self, corpus: Corpus, timeout: float, max_docs: int | None = None) -> float:
        docs = (LoadedDocument(source=f"{corpus.name}-{i}", text=t) for i, t in enumerate(corpus.texts))
        settings = self.settings if max_docs is None else self.settings.model_copy(update={"batch_max_docs": max_docs})
        self._first_publish = None
        report = submit_batch(settings=settings, engine=self.db, app=self.app, task="classify",
                              documents=docs, params=corpus.params, force=True)
        _, last = wait_finished(self.db, report.batch_id, len(corpus.texts), timeout)
        assert self._first_publish is not None
        return len(corpus.texts) / (last - self._first_publish)

    def _on_publish(self, **_: Any) -> None:
        """``before_task_publish``: the clock starts at the first enqueue (the issue's definition)."""
        if self._first_publish is None:
            self._first_publish = time.time()

    def naive_run(self, queue: str, corpus: Corpus, timeout: float, cap_s: float | None = None) -> float:
        """One task per document, in a fixed random order; with ``cap_s``, the rate of what was done
        by then (the rest of the queue is dropped and in-flight tasks drained before returning)."""
        batch_id = new_id()
        texts = list(corpus.texts)
        random.Random(7).shuffle(texts)
        jobs = [(new_id(), new_id(), t) for t in texts]
        now = utcnow()
        with self.db.begin() as conn:  # the same rows docqueue stores, in bulk
            conn.execute(sa.insert(Batch), [{"id": batch_id, "task": "classify", "params": corpus.params,
                                             "model": None, "created_at": now}])
            conn.execute(sa.insert(Document), [{"id": d, "batch_id": batch_id, "position": i, "source": str(i),
                                                "text": t, "meta": {}, "created_at": now}
                                               for i, (_, d, t) in enumerate(jobs)])
            conn.execute(sa.insert(Job), [{"id": j, "batch_id": batch_id, "document_id": d, "task": "classify",
                                           "status": "queued", "attempts": 0, "created_at": now}
                                          for j, d, _ in jobs])
        self._first_publish = None
        naive_enqueue(self.naive, queue, [(j, t) for j, _, t in jobs], corpus.params)
        done, last = wait_finished(self.db, batch_id, len(jobs), timeout, cap_s)
        assert self._first_publish is not None
        if done < len(jobs):
            redis.Redis.from_url(self.redis_url).delete(queue)
            wait_quiet(self.db, batch_id)
        return done / (last - self._first_publish)


def _timeout(n: int) -> float:
    return 120 + n / 2.0  # generous: a stuck run fails instead of hanging


def _start_workers(b: Bench) -> None:
    p = b.processes
    b.start("docqueue", [sys.executable, "-m", "workers", "--queues", "classify", "--pool", b.pool,
                         "--concurrency", str(b.concurrency), "--loglevel", "info"], b.env())
    b.start("naive-solo", python_argv("ops/bench/throughput_naive.py", "--queue", "naive-solo", "--pool", "solo"),
            b.env())
    b.start("naive-prefork", python_argv("ops/bench/throughput_naive.py", "--queue", "naive-prefork", "--pool",
                                         "prefork", "-c", str(p)), b.env())
    for name in ("docqueue", "naive-solo", "naive-prefork"):
        b.workers[name].wait_for(" ready.")


def _warm(b: Bench, corpus: Corpus) -> None:
    """Every worker process runs a few documents (label vectors cached, first-call costs paid)
    before anything is timed: several small messages, so that every prefork child gets some."""
    small = Corpus(corpus.name, corpus.texts[: 16 * b.processes], corpus.labels, corpus.source)
    b.docqueue_run(small, timeout=600, max_docs=4)
    for queue in ("naive-solo", "naive-prefork"):
        b.naive_run(queue, small, timeout=600)


def _measure_corpus(b: Bench, corpus: Corpus, raw_engine: Any, mp: ProcessPerCore, repeats: int,
                    cap_s: float) -> None:
    n = len(corpus.texts)
    raw: dict[str, Callable[[], float]] = {
        **{f"raw:sorted-b{s}": (lambda s=s: time_in_process(raw_engine, corpus.texts, corpus.params, s, cap_s))
           for s in RAW_BATCHES},
        "raw:mp-b1": lambda: mp.time(corpus.texts, corpus.params, 1, cap_s),
        "raw:mp-sorted": lambda: mp.time(corpus.texts, corpus.params, MP_SORTED_BATCH, cap_s),
    }
    naive = {f"naive:{q.split('-')[1]}": (lambda q=q: b.naive_run(q, corpus, _timeout(n), cap_s))
             for q in ("naive-solo", "naive-prefork")}
    docqueue = {"docqueue": lambda: b.docqueue_run(corpus, _timeout(n))}
    for name, fn in {**raw, **docqueue, **naive}.items():  # screening: every configuration once
        b.record(corpus.name, name, fn())
    def first(name: str) -> float:
        return b.results[(corpus.name, name)].values[0]

    # the two best raw configurations stay in (one noisy screening run must not decide alone)
    top_raw = sorted(raw, key=first, reverse=True)[:2]
    best_naive = max(naive, key=first)
    per_round = [(max(first(k) for k in raw), first("docqueue"), first(best_naive))]
    for i in range(1, repeats):  # the contenders again, back to back
        for name in top_raw:
            b.record(corpus.name, name, raw[name]())
        b.record(corpus.name, "docqueue", docqueue["docqueue"]())
        b.record(corpus.name, best_naive, naive[best_naive]())
        per_round.append((max(b.results[(corpus.name, k)].values[i] for k in top_raw),
                          b.results[(corpus.name, "docqueue")].values[i],
                          b.results[(corpus.name, best_naive)].values[i]))
    # ratios of runs made minutes apart, round by round: the load of a shared machine cancels out;
    # a round's raw figure is the best raw configuration of that round
    best_raw = max(top_raw, key=lambda k: b.results[(corpus.name, k)].median)
    b.ratios[corpus.name] = (best_raw, best_naive, statistics.median(dq / r for r, dq, _ in per_round),
                             statistics.median(dq / n for _, dq, n in per_round))


def _noop(b: Bench, corpus: Corpus, repeats: int) -> float:
    b.stop("docqueue")
    b.start("noop", python_argv("ops/bench/throughput_noop.py", "--queues", "classify", "--pool", b.pool,
                                "--concurrency", str(b.concurrency), "--loglevel", "info"), b.env())
    try:
        b.workers["noop"].wait_for(" ready.")
        b.docqueue_run(Corpus(corpus.name, corpus.texts[:200], corpus.labels, corpus.source), timeout=300,
                       max_docs=8)
        for _ in range(repeats):
            b.record("noop", "docqueue+noop-engine", b.docqueue_run(corpus, _timeout(len(corpus.texts))))
    finally:
        b.stop("noop")
    return b.results[("noop", "docqueue+noop-engine")].median


def _submit_probe(b: Bench, texts: list[str], n: int) -> tuple[float, float]:
    """``docqueue submit`` of ``n`` small documents from one JSONL export, as a user runs it, in its
    own process (so its peak RSS is the producer's alone) against its own SQLite file."""
    path = b.workdir / "submit.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"doc-{i}", "text": f"{texts[i % len(texts)]} (#{i})"}) + "\n")
    env = b.env(DATABASE_URL=f"sqlite:///{b.workdir / 'submit.db'}")
    out_path, err_path = b.workdir / "submit.out", b.workdir / "submit.err"
    peak_kb = 0
    start = time.perf_counter()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "producer.cli", "submit", "classify", str(path), "--labels",
                                 "question,statement", "--json"], env=env, cwd=ROOT, stdout=out, stderr=err)
        # VmHWM is the peak RSS of the process image after exec (getrusage would report the
        # benchmark's own memory, inherited through the fork)
        while proc.poll() is None:
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            time.sleep(0.02)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"docqueue submit failed: {err_path.read_text(errors='replace')[-2000:]}")
    submitted = json.loads(out_path.read_text())["documents"]
    redis.Redis.from_url(b.redis_url).delete("classify")  # nobody will consume these
    return submitted / elapsed, peak_kb / 1024


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=ROOT.parent / "shared" / "data",
              envvar="DOCQUEUE_BENCH_DATA", show_envvar=True, help="The public evaluation data (tatoeba/, ledgar/).")
@click.option("--docs", type=int, default=2000, envvar="DOCQUEUE_BENCH_DOCS", show_envvar=True,
              help="Documents of the short corpus per run.")
@click.option("--medium-docs", type=int, default=500, envvar="DOCQUEUE_BENCH_MEDIUM_DOCS", show_envvar=True,
              help="Documents of the medium corpus per run (LEDGAR dev has 500; more cycles them).")
@click.option("--noop-docs", type=int, default=10000, envvar="DOCQUEUE_BENCH_NOOP_DOCS", show_envvar=True,
              help="Documents per noop run.")
@click.option("--submit-docs", type=int, default=100_000, envvar="DOCQUEUE_BENCH_SUBMIT_DOCS", show_envvar=True,
              help="Documents the submit probe enqueues.")
@click.option("--repeats", type=int, default=3, envvar="DOCQUEUE_BENCH_REPEATS", show_envvar=True,
              help="Runs of docqueue and of the best raw and naive configurations (the median counts).")
@click.option("--quick", is_flag=True, envvar="DOCQUEUE_BENCH_QUICK", show_envvar=True,
              help="A short run: 200 short / 64 medium / 2,000 noop / 20,000 submitted documents, one repeat, "
              "10 s caps.")
@click.option("--cap-seconds", "cap_s", type=float, default=30.0, envvar="DOCQUEUE_BENCH_CAP_SECONDS",
              show_envvar=True, help="A raw or naive run stops after this long and counts what it did (a fixed "
              "random order, so a fair sample); docqueue runs always process every document.")
@click.option("--corpora", default="short,medium", envvar="DOCQUEUE_BENCH_CORPORA", show_envvar=True,
              help="Corpora to run.")
@click.option("--database-url", envvar="DOCQUEUE_BENCH_DATABASE_URL", show_envvar=True,
              help="Database to use instead of a temporary SQLite file (e.g. PostgreSQL; migrated here).")
@click.option("--redis-host", default="redis://127.0.0.1:6379", envvar="DOCQUEUE_BENCH_REDIS", show_envvar=True,
              help="Redis server; the benchmark locks a DB number of its own.")
@click.option("--pool", type=click.Choice(["prefork", "solo"]), default="prefork", envvar="DOCQUEUE_BENCH_POOL",
              show_envvar=True, help="docqueue worker pool.")
@click.option("--runtimes", default=",".join(RUNTIMES), envvar="DOCQUEUE_BENCH_RUNTIMES", show_envvar=True,
              help="Runtimes compared raw and through docqueue on the medium corpus (docs per CPU-second, fraction "
              "of the measured peak); '' for none.")
@click.option("--onnx-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="DOCQUEUE_BENCH_ONNX_DIR", show_envvar=True,
              help="DOCQUEUE_ONNX_DIR holding the MiniLM artifact of `docqueue models optimize` (onnx-int8 rows).")
@click.option("--runtimes-only", is_flag=True, envvar="DOCQUEUE_BENCH_RUNTIMES_ONLY", show_envvar=True,
              help="Only the runtime comparison (no raw/naive/noop/submit rows).")
@click.option("--concurrency", type=int, default=0, envvar="DOCQUEUE_BENCH_CONCURRENCY", show_envvar=True,
              help="docqueue worker processes [default: one per usable core].")
def main(data: Path, docs: int, medium_docs: int, noop_docs: int, submit_docs: int, repeats: int, quick: bool,
         cap_s: float, corpora: str, database_url: str | None, redis_host: str, pool: str, concurrency: int,
         runtimes: str, onnx_dir: Path | None, runtimes_only: bool) -> None:
    """Throughput of docqueue vs the model fed directly vs one Celery task per document."""
    if quick:
        docs, medium_docs, noop_docs, submit_docs, repeats, cap_s = 200, 64, 2000, 20_000, 1, 10.0
    # a SIGTERM (e.g. from a CI timeout) still stops the worker processes this run started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    processes = usable_cores()
    sizes = {"short": docs, "medium": medium_docs}
    names = [c.strip() for c in corpora.split(",") if c.strip()]
    loaded = [load_corpus(name, data, sizes[name]) for name in names]
    began = time.monotonic()

    def say(line: str) -> None:
        click.echo(line, err=True)

    with tempfile.TemporaryDirectory(prefix="docqueue-bench-") as tmp, redis_db(redis_host) as redis_url:
        workdir = Path(tmp)
        url = get_settings(database_url=database_url or f"sqlite:///{workdir / 'bench.db'}").database_url
        db.upgrade(url)
        b = Bench(url, redis_url, workdir, processes, pool, concurrency or processes, say)
        say(f"docqueue throughput benchmark: {processes} usable cores, database {url.split('://')[0]}, "
            f"docqueue worker --pool {pool} --concurrency {b.concurrency}")
        mp: ProcessPerCore | None = None
        compared = available([r.strip() for r in runtimes.split(",") if r.strip()], onnx_dir, say)
        if runtimes_only:
            medium = load_corpus("medium", data, medium_docs)
            rows, gflop, peaks = measure_runtimes(b, medium, compared, onnx_dir, repeats, _timeout(medium_docs))
            report_runtimes(rows, compared, medium_docs, gflop, peaks, click.echo)
            return
        try:
            _start_workers(b)
            mp = ProcessPerCore(processes)
            raw_engine = load_engine(threads=processes, exact_batches=True)
            for corpus in loaded:
                say(f"{corpus.name}: {len(corpus.texts)} documents of {corpus.source}")
                _warm(b, corpus)
                _measure_corpus(b, corpus, raw_engine, mp, repeats, cap_s)
            mp.close()
            mp = None
            b.stop("naive-solo", "naive-prefork")
            runtime_rows = None
            if compared:
                medium = load_corpus("medium", data, medium_docs)
                runtime_rows = measure_runtimes(b, medium, compared, onnx_dir, repeats, _timeout(medium_docs))
            noop_corpus = load_corpus("short", data, noop_docs)
            noop = _noop(b, noop_corpus, repeats)
            submit_rate, rss = _submit_probe(b, noop_corpus.texts, submit_docs)
        except Exception:
            for proc in b.workers.values():
                say(f"--- {proc.name} log (tail) ---\n{proc.log()[-3000:]}")
            raise
        finally:
            if mp is not None:
                mp.close()
            b.stop(*list(b.workers))

    click.echo(f"{'corpus':<7}{'configuration':<24}{'docs/s':>9}  runs")
    for (corpus, config), runs in b.results.items():
        click.echo(f"{corpus:<7}{config:<24}{runs.median:9.1f}  {', '.join(f'{v:.1f}' for v in runs.values)}")
    ratios: dict[str, tuple[float, float]] = {}
    for corpus in names:
        raw_name, naive_name, to_raw, to_naive = b.ratios[corpus]
        ratios[corpus] = (to_raw, to_naive)
        click.echo(f"{corpus}: docqueue {b.results[(corpus, 'docqueue')].median:.1f} docs/s; raw best {raw_name} "
                   f"{b.results[(corpus, raw_name)].median:.1f}; naive best {naive_name} "
                   f"{b.results[(corpus, naive_name)].median:.1f}; docqueue/raw={to_raw:.2f} "
                   f"docqueue/naive={to_naive:.2f} (medians of per-round ratios)")
    if runtime_rows:
        report_runtimes(runtime_rows[0], compared, medium_docs, runtime_rows[1], runtime_rows[2], click.echo)
    click.echo(f"noop_docs_per_s={noop:.0f} ({noop_docs} documents, queue + database only)")
    click.echo(f"submit_docs_per_s={submit_rate:.0f} ({submit_docs} documents) producer_peak_rss_mb={rss:.0f}")
    click.echo(f"elapsed {time.monotonic() - began:.0f}s")
    main_corpus = "medium" if "medium" in ratios else names[0]
    r, n = ratios[main_corpus]
    s = ratios.get("short", (0.0, 0.0))[1]
    click.echo(f"throughput docqueue/raw={r:.2f} docqueue/naive={n:.2f} short_docqueue/naive={s:.2f} "
               f"noop_docs_per_s={noop:.0f} submit_docs_per_s={submit_rate:.0f}")


if __name__ == "__main__":
    main()
