"""An item over ``DOCQUEUE_MAX_MESSAGE_BYTES`` is refused without the worker reading it whole (issue 23, item 6).

A real solo worker (the noop engine: the queue is under test) pops a 48 MB item with a 1 MiB limit.
Before, BRPOP's whole reply was read, copied and decoded before the size was checked: the worker's
peak RSS grew by about three times the item (286 MB for 100 MB, ``ops/bench/oversized_item.py``).
Now the item is streamed through keeping its first and last bytes: the growth is a few MB; the
bound below (half the item) leaves room for noise and still fails if the item is ever held whole.
The refusal is visible as before: a dead letter with its batch, correlation id and whole size, and
a ``message.rejected`` event; the worker keeps its PID and runs the good message behind it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis

from docqueue import deadletter
from docqueue.events import STREAM
from tests.conftest import NOOP_WORKER, service_env
from tests.helpers import cli_json, wait_until
from tests.integration.test_foreign_publisher import foreign_message
from workers.memory import proc_status_kib, reset_peak

ITEM_MB = 48


def _message(batch: str, text: str) -> bytes:
    return foreign_message("docqueue.classify", "classify", {
        "v": 1, "batch": batch, "params": {"labels": ["contract", "invoice"]},
        "documents": [{"id": "d1", "text": text}]}, correlation_id=f"publisher-{batch}")


def test_an_oversized_item_is_refused_without_being_held(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                         start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_MAX_MESSAGE_BYTES=str(2**20))
    client = redis.Redis.from_url(clean_redis)
    worker = start_worker(env, module=NOOP_WORKER)
    client.lpush("classify", _message("warm-up", "Invoice 12: amount due $40."))
    wait_until(lambda: cli_json(env, "status", "warm-up", "--json").get("succeeded") == 1, timeout=60,
               what="the warm-up message")
    time.sleep(0.5)  # its task's last writes
    pid = worker.proc.pid
    before = proc_status_kib(pid)["VmRSS"]
    assert reset_peak(pid), "cannot reset the worker's VmHWM"
    big = _message("too-big", "x" * (ITEM_MB * 10**6 * 3 // 4))  # base64 in the envelope: 4/3
    client.lpush("classify", big)
    client.lpush("classify", _message("behind-it", "Invoice 13: amount due $50."))
    wait_until(lambda: client.zcard(deadletter.INDEX_KEY) == 1, timeout=120, what="the oversized item's dead letter")
    wait_until(lambda: cli_json(env, "status", "behind-it", "--json").get("succeeded") == 1, timeout=60,
               what="the message behind it")
    growth_mb = (proc_status_kib(pid)["VmHWM"] - before) / 1024
    assert growth_mb < ITEM_MB / 2, f"peak RSS grew by {growth_mb:.0f} MB for a {ITEM_MB} MB item"
    assert worker.proc.poll() is None and worker.proc.pid == pid

    [letter] = deadletter.entries(client)
    assert (letter.kind, letter.batch, letter.correlation_id) == ("message_too_large", "too-big", "publisher-too-big")
    assert letter.size == len(big) and letter.truncated and str(len(big)) in letter.reason
    events = [json.loads(fields[b"data"]) for _, fields in client.xrange(STREAM)]
    rejected = [e for e in events if e.get("type") == "message.rejected"]
    assert len(rejected) == 1 and rejected[0]["batch"] == "too-big", rejected
    assert rejected[0]["size"] == len(big) and rejected[0]["correlation_id"] == "publisher-too-big"
    assert cli_json(env, "status", "too-big", "--json")["rejected"] == 1
