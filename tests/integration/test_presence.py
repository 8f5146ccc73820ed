"""Workers say in Redis which queues they consume and which they refused, and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import service_env
from tests.helpers import cli, wait_until

pytestmark = pytest.mark.integration


def test_a_worker_records_its_queues_and_its_refusals(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                     start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, HF_HOME=str(tmp_path / "empty-hf-cache"))
    worker = start_worker(env, queues="classify,translate")

    def records() -> list[dict]:
        return [json.loads(line) for line in cli(env, "workers", "--json").stdout.splitlines()]

    found = wait_until(records, timeout=30, what="the worker's record")
    assert len(found) == 1
    assert found[0]["queues"] == ["classify"]
    assert "opus-mt" in found[0]["refused"]["translate"] and "models pull" in found[0]["refused"]["translate"]
    worker.stop()
    wait_until(lambda: records() == [], timeout=30, what="the record to be withdrawn on shutdown")
