"""Worker child memory on very big documents: peak and kept RSS per task and document size.

    python ops/bench/big_document.py [--sizes 1e6,16e6,100e6] [--tasks classify,summarize,review]

For each task that runs offline (classify and extractive summarize and review, all on the shipped
MiniLM), one real worker (``python -m workers``, prefork, one child) is started on Redis (a DB
number of its own, as the tests take) and SQLite in a temporary folder; it first runs a small
warm-up document, then each size in turn, submitted with the real ``docqueue submit`` (file and
character limits raised so the 100 MB text is accepted). Before each document the child's peak RSS
is reset (``/proc/<pid>/clear_refs``); after it, ``VmHWM`` (peak) and ``VmRSS`` (kept) are read from
``/proc/<pid>/status``. The worker's memory ceiling is off (``DOCQUEUE_WORKER_MAX_MEMORY_MB=0``) so
the same child runs every size. The text is English-like prose of contract words in paragraphs
(built here, 1 MB repeated), so figures measure size, not content. Prints a table and one summary
line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "ops" / "bench"))

import sqlalchemy as sa  # noqa: E402
from sqlmodel import col  # noqa: E402
from throughput_services import Process, redis_db  # noqa: E402

from docqueue.db import get_engine  # noqa: E402
from docqueue.models import Job  # noqa: E402
from tests.helpers import prose  # noqa: E402
from workers.memory import proc_status_kib, reset_peak  # noqa: E402

WORDS = ["supplier", "shall", "deliver", "goods", "agreement", "party", "term", "notice", "payment", "within",
         "days", "order", "schedule", "invoice", "liability", "law", "governed", "state", "contract", "terminate",
         "confidential", "information", "licensee", "royalty", "warranty", "indemnify"]
SUBMIT_ARGS = {
    "classify": ["--labels", "contract,invoice,letter"],
    "summarize": ["--engine", "extractive"],
    "review": [],
}


def write_document(path: Path, chars: int, block: str) -> None:
    with path.open("w", encoding="utf-8") as f:
        left = chars
        while left > 0:
            piece = (block + "\n\n")[:left]
            f.write(piece)
            left -= len(piece)


def submit(env: dict[str, str], task: str, path: Path) -> str:
    import json
    import subprocess

    out = subprocess.run([sys.executable, "-m", "producer.cli", "submit", task, str(path), *SUBMIT_ARGS[task],
                          "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"submit failed: {out.stdout}\n{out.stderr}")
    return str(json.loads(out.stdout)["batch"])


def wait_job(url: str, batch: str, timeout: float = 7200) -> tuple[str, str, str | None]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_engine(url).connect() as conn:
            row = conn.execute(sa.select(col(Job.status), col(Job.worker), col(Job.error_kind))
                               .where(col(Job.batch_id) == batch)).first()
        if row is not None and row[0] in ("succeeded", "failed"):
            return str(row[0]), str(row[1]), row[2]
        time.sleep(0.5)
    raise RuntimeError(f"batch {batch} not finished after {timeout}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e6,16e6,100e6", help="document sizes in characters")
    ap.add_argument("--tasks", default="classify,summarize,review")
    ap.add_argument("--redis", default=os.environ.get("DOCQUEUE_BENCH_REDIS", "redis://127.0.0.1:6379"))
    args = ap.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    block = prose(1_000_000, WORDS, seed=7)
    rows: list[tuple[str, int, float, float, float, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp, redis_db(args.redis) as redis_url:
        work = Path(tmp)
        for task in args.tasks.split(","):
            db = f"sqlite:///{work / f'{task}.db'}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQUEUE_")}
            env.update({"REDIS_URL": redis_url, "DATABASE_URL": db, "DOCQUEUE_DATA_DIR": str(work / "data"),
                        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                        "OMP_NUM_THREADS": "1", "DOCQUEUE_WORKER_MAX_MEMORY_MB": "0",
                        "DOCQUEUE_MAX_FILE_BYTES": str(max(sizes) * 4 + 2**20),
                        "DOCQUEUE_MAX_DOCUMENT_CHARS": str(max(sizes) + 1)})
            worker = Process(f"worker-{task}", [sys.executable, "-m", "workers", "--queues", task, "--pool",
                                                "prefork", "--concurrency", "1", "--loglevel", "info"], env, work)
            try:
                worker.wait_for(" ready.")
                warm = work / "warm.txt"
                warm.write_text(prose(20_000, WORDS, seed=1))
                status, owner, _ = wait_job(db, submit(env, task, warm))
                child = int(owner.rsplit("/", 1)[1])
                for chars in sizes:
                    path = work / f"doc-{chars}.txt"
                    write_document(path, chars, block)
                    before = proc_status_kib(child)["VmRSS"] / 1024
                    reset_peak(child)
                    started = time.monotonic()
                    batch = submit(env, task, path)
                    status, owner, kind = wait_job(db, batch)
                    elapsed = time.monotonic() - started
                    path.unlink()
                    if int(owner.rsplit("/", 1)[1]) != child:
                        raise RuntimeError(f"{task} {chars}: another child ran it ({owner})")
                    now = proc_status_kib(child)
                    rows.append((task, chars, elapsed, before, now["VmHWM"] / 1024, now["VmRSS"] / 1024,
                                 status if status == "succeeded" else f"{status} ({kind})"))
                    print(f"{task:9} {chars / 1e6:6g}M chars  {elapsed:7.1f} s  before {before:6.0f} MB  "
                          f"peak {rows[-1][4]:6.0f} MB  after {rows[-1][5]:6.0f} MB  {rows[-1][6]}", flush=True)
            finally:
                worker.stop()
    print("\n| task | document | seconds | child RSS before | peak | after | outcome |")
    print("|---|---|---|---|---|---|---|")
    for task, chars, elapsed, before, peak, after, outcome in rows:
        print(f"| {task} | {chars / 1e6:g}M chars | {elapsed:.0f} | {before:.0f} MB | {peak:.0f} MB | "
              f"{after:.0f} MB | {outcome} |")
    worst = max(rows, key=lambda r: r[4] - r[3])
    print(f"\nbig_document worst_peak_growth_mb={worst[4] - worst[3]:.0f} ({worst[0]}, {worst[1] / 1e6:g}M chars) "
          f"max_peak_mb={max(r[4] for r in rows):.0f} max_after_mb={max(r[5] for r in rows):.0f}")


if __name__ == "__main__":
    main()
