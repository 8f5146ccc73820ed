"""``docqueue worker --check``, the compose/Kubernetes healthcheck, against real workers on the real
Redis: healthy while a worker of this host consumes, one line and a non-zero exit otherwise (none
started, killed, refused its queues, another host's worker only, Redis unreachable)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import redis

from docqueue import presence
from tests.conftest import NOOP_WORKER, service_env
from tests.helpers import cli, wait_until


def _check(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = cli(env, "worker", "--check", *args, check=False, timeout=60)
    out = (proc.stdout + proc.stderr).strip()
    assert len(out.splitlines()) == 1, out  # a healthcheck log shows one line, not a traceback
    return proc.returncode, out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_check_follows_a_real_worker(clean_redis: str, sqlite_url: str, tmp_path: Path, start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    host = socket.gethostname()
    code, line = _check(env)
    assert code == 1 and f"no docqueue worker alive on {host}" in line

    worker = start_worker(env, queues="classify", module=NOOP_WORKER)
    code, line = wait_until(lambda: (r := _check(env))[0] == 0 and r, timeout=30, what="a healthy check")
    assert line.startswith("ok: docqueue-") and f"@{host} consumes classify" in line
    assert _check(env, "--queues", "classify")[0] == 0
    code, line = _check(env, "--queues", "classify,summarize")
    assert code == 1 and "consumes summarize" in line
    # the env var does the same (every option has one); it must not start a second worker
    started = time.monotonic()
    assert cli(env | {"DOCQUEUE_WORKER_CHECK": "1"}, "worker", timeout=60).stdout.startswith("ok: ")
    assert time.monotonic() - started < 30

    # SIGKILL: the record stays in Redis up to 30 s, but the check sees the process gone at once
    worker.kill()
    keys = redis.Redis.from_url(clean_redis).keys(presence.KEY_PREFIX + "*")
    assert keys, "the killed worker's record should still be there (expiry 30 s)"
    code, line = _check(env)
    assert code == 1 and "its process" in line and "is gone" in line


def test_a_worker_that_refused_every_queue_is_unhealthy(clean_redis: str, sqlite_url: str, tmp_path: Path,
                                                        start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, HF_HOME=str(tmp_path / "empty-hf-cache"))
    worker = start_worker(env, queues="translate", wait=False)
    assert worker.proc.wait(120) == 2  # "no queue left to consume"
    code, line = _check(env)
    assert code == 1 and "refused its queues" in line and "translate: " in line and "opus-mt" in line


def test_another_hosts_worker_does_not_make_this_host_healthy(clean_redis: str, sqlite_url: str,
                                                                tmp_path: Path) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    client = redis.Redis.from_url(clean_redis)
    record = presence.WorkerRecord(node="docqueue-1@some-other-host", pid=1, queues=["classify"])
    presence.publish(client, record)
    assert json.loads(client.get(presence.KEY_PREFIX + record.node) or b"{}")["queues"] == ["classify"]
    code, line = _check(env)
    assert code == 1 and "1 worker(s) on other hosts" in line


def test_unreachable_redis_is_one_line_and_exit_2(sqlite_url: str, tmp_path: Path) -> None:
    env = service_env(f"redis://:s3cret@127.0.0.1:{_free_port()}/0", sqlite_url, tmp_path)
    code, line = _check(env)
    assert code == 2 and line.startswith("unhealthy: cannot ask the broker") and "s3cret" not in line
