"""Redis at ``maxmemory`` while a worker consumes (issue 23, items 8 and 9).

The test's own redis-server (tests/faults/servers.py) holds the queue. While the worker runs the
first of three messages (the noop engine sleeps), ``CONFIG SET maxmemory`` drops below what Redis
already uses, with ``noeviction``: every write that needs memory is refused. When the worker then
takes the next message, BRPOP removes it and kombu's ``unacked`` HSET is refused. Before, the worker
died ("Unrecoverable error", exit status 0, so ``restart: on-failure`` never restarted it) and the
message was in neither the list nor ``unacked``: its jobs stayed ``queued`` for ever.

- the worker survives: it holds the message, puts it back once Redis takes writes again, keeps its
  PID, and every document is run once;
- a worker killed while it holds such a message loses it, as a crash would: the reaper of the next
  worker finds the queued jobs with no message anywhere and publishes them again;
- a broker error the worker cannot go on from exits non-zero and leaves the message on the queue.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import service_env
from tests.faults.servers import REDIS_SERVER, AofRedis
from tests.helpers import cli_json, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[AofRedis]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"{REDIS_SERVER} not installed")
    server = AofRedis(tmp_path / "redis", None, "--maxmemory-policy", "noeviction").start()
    yield server
    server.stop()


def _submit(env: dict[str, str], tmp_path: Path, n: int) -> str:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"d{i}", "text": f"d{i} invoice number {i}, amount due."}) + "\n"
                            for i in range(n)))
    return str(cli_json(env, "submit", "classify", str(rows), "--id-field", "id", "--labels", "contract,invoice",
                        "--json")["batch"])


def _memory_full(server: AofRedis) -> None:
    # 1 byte, not just under what Redis uses now: memory freed a moment later (an acked message, a
    # client's buffers) would bring it back under a limit that close, and the next HSET would pass
    client = server.client()
    client.config_set("maxmemory", "1")
    with pytest.raises(Exception, match="maxmemory"):
        client.set("probe", "x" * 1024)


def _runs(log: Path) -> Counter[str]:
    return Counter(log.read_text().split()) if log.exists() else Counter()


def _env(server: AofRedis, sqlite_url: str, tmp_path: Path, runs: Path, **extra: str) -> dict[str, str]:
    return service_env(server.url, sqlite_url, tmp_path, DOCQUEUE_BATCH_MAX_DOCS="1",
                       DOCQUEUE_TEST_ENGINE_DELAY_S="4", DOCQUEUE_TEST_ENGINE_LOG=str(runs),
                       DOCQUEUE_TASK_EVENTS="false", **extra)


def test_a_worker_survives_redis_at_maxmemory_and_loses_no_message(own_redis: AofRedis, sqlite_url: str,
                                                                  tmp_path: Path, start_worker: Any) -> None:
    runs = tmp_path / "runs.log"
    env = _env(own_redis, sqlite_url, tmp_path, runs)
    worker = start_worker(env, module="tests.faults.noop_worker")
    pid = worker.proc.pid
    batch = _submit(env, tmp_path, 3)
    wait_until(lambda: _runs(runs), timeout=60, what="the first message to start")
    _memory_full(own_redis)
    wait_until(lambda: "holding it to put it back" in worker.log(), timeout=60,
               what="the worker to take the next message while Redis refuses writes")
    own_redis.client().config_set("maxmemory", "0")
    wait_until(lambda: cli_json(env, "status", batch, "--json")["succeeded"] == 3, timeout=120,
               what="every document to succeed")
    assert worker.proc.poll() is None and worker.proc.pid == pid, worker.log()[-4000:]
    assert "Unrecoverable error" not in worker.log()
    assert _runs(runs) == Counter({"d0": 1, "d1": 1, "d2": 1})


def test_the_reaper_publishes_queued_jobs_whose_message_was_lost(own_redis: AofRedis, sqlite_url: str,
                                                                tmp_path: Path, start_worker: Any) -> None:
    runs = tmp_path / "runs.log"
    env = _env(own_redis, sqlite_url, tmp_path, runs, DOCQUEUE_QUEUED_LOST_AFTER_S="2",
               DOCQUEUE_REAPER_INTERVAL_S="1")
    first = start_worker(env, module="tests.faults.noop_worker")
    batch = _submit(env, tmp_path, 4)  # one more than needed: a slow test may see the first run late
    wait_until(lambda: _runs(runs), timeout=60, what="the first message to start")
    _memory_full(own_redis)
    wait_until(lambda: "holding it to put it back" in first.log(), timeout=60, what="a message held")
    first.proc.send_signal(signal.SIGKILL)  # killed while it holds the message: in neither list nor unacked
    first.proc.wait(10)
    before = _runs(runs)  # what ran before the kill (one document, or two where the next was prefetched)
    client = own_redis.client()
    client.config_set("maxmemory", "0")
    status = cli_json(env, "status", batch, "--json")
    assert status["succeeded"] + status["running"] + status["queued"] == 4
    assert status["queued"] > client.llen("classify")  # a queued job whose message is nowhere
    # the killed worker's running job comes back through its stale heartbeat; the lost one only through
    # the queued-job check
    env["DOCQUEUE_HEARTBEAT_TIMEOUT_S"] = "5"
    second = start_worker(env, module="tests.faults.noop_worker")
    wait_until(lambda: cli_json(env, "status", batch, "--json")["succeeded"] == 4, timeout=180,
               what="every document to succeed, the lost one included")
    assert "had no message on the queue nor in a worker's hands" in second.log(), second.log()[-4000:]
    after = _runs(runs)
    assert set(after) == {"d0", "d1", "d2", "d3"}
    assert all(after[d] == 1 for d in after if d not in before), after  # the lost one ran once, once found


def test_an_unrecoverable_broker_error_exits_non_zero_and_keeps_the_message(
        own_redis: AofRedis, sqlite_url: str, tmp_path: Path, start_worker: Any) -> None:
    """A broker error the worker cannot go on from must not exit 0 (``restart: on-failure`` would
    leave it down), nor take the message with it. Here kombu's ``unacked`` key is a string, so its
    HSET fails with WRONGTYPE right after BRPOP took the message."""
    env = service_env(own_redis.url, sqlite_url, tmp_path, DOCQUEUE_TASK_EVENTS="false")
    worker = start_worker(env, module="tests.faults.noop_worker")
    client = own_redis.client()
    client.set("unacked", "not a hash")
    batch = _submit(env, tmp_path, 1)
    assert worker.proc.wait(120) != 0, worker.log()[-3000:]
    assert "WRONGTYPE" in worker.log() and client.llen("classify") == 1
    client.delete("unacked")
    start_worker(env, module="tests.faults.noop_worker")
    wait_until(lambda: cli_json(env, "status", batch, "--json")["succeeded"] == 1, timeout=120,
               what="the kept message to run")
