"""What an oversized queue item costs the worker that pops it (issue 23, item 6).

    python ops/bench/oversized_item.py --mb 100 --mb 280

For each size, a real solo worker (``tests/faults/noop_worker.py``: the queue is under test, not a
model) on a redis-server of the benchmark's own is started and warmed up with one good message;
its peak RSS (``VmHWM``) is then reset, an item of that many MB (a kombu envelope whose body is one
long string: over ``DOCQUEUE_MAX_MESSAGE_BYTES``) is pushed, and the benchmark waits for its dead
letter. Printed: the worker's RSS before, its peak while refusing the item, and the growth; and
whether the worker kept its PID and the dead letter its batch and size.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from docqueue import deadletter  # noqa: E402
from tests.conftest import NOOP_WORKER, WorkerProcess, service_env  # noqa: E402
from tests.faults.servers import AofRedis  # noqa: E402
from tests.integration.test_foreign_publisher import foreign_message  # noqa: E402
from workers.memory import proc_status_kib, reset_peak  # noqa: E402

GOOD = {"v": 1, "batch": "warm-up", "params": {"labels": ["contract", "invoice"]},
        "documents": [{"id": "a", "text": "Invoice 12: amount due $40."}]}


def oversized(mb: int) -> bytes:
    """A well-formed envelope of ``mb`` MB naming batch ``big-<mb>``: the body is one long text."""
    doc = {"v": 1, "batch": f"big-{mb}", "params": {"labels": ["contract", "invoice"]},
           "documents": [{"id": "big", "text": "x" * (mb * 10**6 * 3 // 4)}]}  # base64: 4/3
    return foreign_message("docqueue.classify", "classify", doc)


def measure(mb: int, work: Path) -> dict[str, object]:
    server = AofRedis(work / f"redis-{mb}", None, "--appendonly", "no").start()
    try:
        env = service_env(server.url, f"sqlite:///{work / f'db-{mb}.sqlite'}", work / f"w{mb}")
        worker = WorkerProcess(env, work / f"worker-{mb}.log", module=NOOP_WORKER).wait_ready()
        client = server.client()
        client.lpush("classify", foreign_message("docqueue.classify", "classify", GOOD))
        deadline = time.monotonic() + 120
        while client.llen("classify") and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # the warm-up message's task finishes
        pid = worker.proc.pid
        before = proc_status_kib(pid)["VmRSS"]
        if not reset_peak(pid):
            raise SystemExit("cannot reset VmHWM (/proc/PID/clear_refs needs the same user or root)")
        item = oversized(mb)
        size = len(item)
        started = time.monotonic()
        client.lpush("classify", item)
        del item
        while not client.zcard(deadletter.INDEX_KEY):
            if time.monotonic() - started > 300 or worker.proc.poll() is not None:
                raise SystemExit(f"no dead letter for the {mb} MB item:\n{worker.log()[-3000:]}")
            time.sleep(0.1)
        seconds = time.monotonic() - started
        time.sleep(0.5)
        status = proc_status_kib(pid)
        [letter] = list(deadletter.entries(client))
        worker.kill()
        worker.stop()
        return {"mb": mb, "item_bytes": size, "rss_before_mb": round(before / 1024),
                "peak_mb": round(status["VmHWM"] / 1024), "growth_mb": round((status["VmHWM"] - before) / 1024),
                "refused_s": round(seconds, 2), "kind": letter.kind, "batch": letter.batch,
                "size_recorded": letter.size, "same_pid": worker.proc.pid == pid}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, action="append", help="item size in MB (repeatable; default 100)")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, git {commit.stdout.strip()}")
    with tempfile.TemporaryDirectory(prefix="docqueue-oversized-") as tmp:
        for mb in args.mb or [100]:
            print(json.dumps(measure(mb, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
