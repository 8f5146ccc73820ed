"""Workers say in Redis which queues they consume and which they refused, and why."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import NOOP_WORKER, service_env
from tests.helpers import cli, wait_until


def test_a_worker_records_its_queues_and_its_refusals(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                     start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, HF_HOME=str(tmp_path / "empty-hf-cache"))
    worker = start_worker(env, queues="classify,translate", module=NOOP_WORKER)

    def records() -> list[dict]:
        return list(json.loads(cli(env, "workers", "--json").stdout))

    found = wait_until(records, timeout=30, what="the worker's record")
    assert len(found) == 1
    assert found[0]["queues"] == ["classify"]
    assert "opus-mt" in found[0]["refused"]["translate"] and "models pull" in found[0]["refused"]["translate"]

    # submit repeats the refusal; --require-worker refuses before storing anything
    doc = tmp_path / "hello.txt"
    doc.write_text("Hello, how are you today? The weather is lovely here.")
    refused = cli(env, "submit", "translate", str(doc), "--to", "de", "--require-worker", check=False)
    assert refused.returncode == 3, refused.stderr
    assert "no worker consumes queue 'translate'" in refused.stderr and "opus-mt" in refused.stderr
    assert cli(env, "batches", "--json").stdout.strip() == ""  # nothing stored
    warned = cli(env, "submit", "translate", str(doc), "--to", "de", "--wait", "--no-worker-timeout", "3",
                 check=False, timeout=60)
    assert warned.returncode == 3, warned.stderr
    assert "warning: no worker consumes queue 'translate'" in warned.stderr
    assert "stopped waiting" in warned.stderr and "for 3s" in warned.stderr
    assert cli(env, "submit", "classify", str(doc), "--labels", "a,b", "--require-worker").returncode == 0

    worker.stop()
    wait_until(lambda: records() == [], timeout=30, what="the record to be withdrawn on shutdown")
