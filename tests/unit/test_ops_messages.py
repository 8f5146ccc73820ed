"""What commands print, in-process (click's CliRunner, whose output is not a terminal) against the
real Redis and a SQLite file: ids never wrapped at 80 columns, counts in English, refusals that say
what to do, valid names listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from docqueue import deadletter, presence
from producer.cli import main
from tests.conftest import ROOT
from tests.helpers import wait_until


@pytest.fixture
def env(clean_redis: str, sqlite_url: str, tmp_path: Path) -> dict[str, str]:
    return {"REDIS_URL": clean_redis, "DATABASE_URL": sqlite_url, "DOCQUEUE_DATA_DIR": str(tmp_path / "data")}


def _run(env: dict[str, str], *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env, input=input, terminal_width=80)
    return result.exit_code, result.output


def test_tables_never_wrap_ids_at_80_columns(env: dict[str, str], tmp_path: Path, clean_redis: str) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("Please pay the invoice.")
    code, out = _run(env, "submit", "classify", str(doc), "--labels", "a,b", "--json")
    assert code == 0, out
    batch = json.loads(out.splitlines()[-1])["batch"]
    code, out = _run(env, "batches")
    assert code == 0, out
    assert batch in out and max(map(len, out.splitlines())) <= 80, out
    assert "1 batch\n" in out or out.lstrip().startswith("1 batch")
    assert "1: 1" in out and "queued" in out  # documents: total, then the non-zero states
    deadletter.add(redis.Redis.from_url(clean_redis), raw=b"x", queue="classify", kind="not_json",
                   reason="the Redis item is not JSON " * 3, origin=deadletter.ORIGIN_TRANSPORT,
                   max_raw_bytes=100, max_entries=10, batch=batch)
    code, out = _run(env, "dlq", "list")
    assert code == 0, out
    (entry,) = list(deadletter.entries(redis.Redis.from_url(clean_redis)))
    assert entry.id in out and f"batch {batch}" in out and max(map(len, out.splitlines())) <= 80, out
    assert "1 dead letter\n" in out or "1 dead letter " in out


def test_submit_says_one_document_in_one_message(env: dict[str, str], tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("Please pay the invoice.")
    code, out = _run(env, "submit", "classify", str(doc), "--labels", "a,b")
    assert code == 0, out
    assert "submitted 1 document (" in out and "in 1 message" in out and "1 messages" not in out


def test_dlq_purge_without_a_terminal_names_yes(env: dict[str, str]) -> None:
    code, out = _run(env, "dlq", "purge")
    assert code == 2 and "--yes" in out and "Aborted" not in out


def test_retry_refuses_an_unknown_kind_and_lists_the_valid_ones(env: dict[str, str]) -> None:
    code, out = _run(env, "retry", "some-batch", "--kind", "bogus")
    assert code == 2 and "'bogus'" in out and "model_unavailable" in out and "not_found" in out


def test_workers_json_and_refusals(env: dict[str, str], clean_redis: str) -> None:
    code, out = _run(env, "workers", "--json")
    assert code == 0 and json.loads(out) == []  # valid JSON when no worker runs
    client = redis.Redis.from_url(clean_redis)
    reason = "translate: none of the configured models is available on this machine"
    presence.publish(client, presence.WorkerRecord(node="docqueue-1@host", pid=1, queues=["classify"],
                                                   refused={"translate": reason}, started_at=time.time()))
    code, out = _run(env, "workers", "--json")
    assert code == 0 and [w["node"] for w in json.loads(out)] == ["docqueue-1@host"]
    code, out = _run({**env, "COLUMNS": "400"}, "workers")  # wide: each cell on one line
    assert code == 0 and "1 worker" in out
    assert "translate: translate:" not in out and "translate: none of" in out


def test_retry_warns_when_no_worker_consumes_the_queue(env: dict[str, str], tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("Please pay the invoice.")
    code, out = _run(env, "submit", "classify", str(doc), "--labels", "a,b", "--json")
    batch = json.loads(out.splitlines()[-1])["batch"]
    assert _run(env, "cancel", batch)[0] == 0
    code, out = _run(env, "retry", batch, "--cancelled")
    assert code == 0, out
    assert "no worker consumes queue 'classify'" in out and "re-enqueued jobs wait" in out
    assert "re-enqueued 1 job of batch" in out and "in 1 message" in out


def test_beat_is_quiet_at_info(env: dict[str, str], tmp_path: Path) -> None:
    """``docqueue beat`` at INFO: no alembic lines (its schema check runs at every start), and no
    line per idle poll of an inbox with nothing new."""
    import sqlite3

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    code, out = _run(env, "schedule", "add", "idle", "--every", "1s", "classify", str(inbox), "--labels", "a,b")
    assert code == 0, out
    log = tmp_path / "beat.log"
    database = env["DATABASE_URL"].removeprefix("sqlite:///")

    def idle_runs() -> int:
        with sqlite3.connect(database) as conn:
            return int(conn.execute("SELECT count(*) FROM schedule_run WHERE outcome = 'nothing_new'").fetchone()[0])

    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "producer.cli", "beat", "--max-interval", "1"],
                                env={**os.environ, **env}, cwd=ROOT, stderr=sink, text=True)
        try:
            wait_until(lambda: "beat: Starting" in log.read_text(), timeout=120, what="beat to start")
            wait_until(lambda: idle_runs() >= 1, timeout=60, what="an idle run of the inbox")
        finally:
            proc.terminate()
            proc.wait(30)
    text = log.read_text()
    assert "alembic" not in text and "nothing_new" not in text, text


def test_translate_refusal_names_the_pattern_not_another_pairs_model(tmp_path: Path) -> None:
    """A zh-en user was told to pull opus-mt-en-de (the first configured pair's model)."""
    from docqueue.models_catalog import start_check
    from docqueue.settings import get_settings

    reason = start_check(get_settings(hf_home=str(tmp_path / "empty-hf-cache")), "translate")
    assert reason is not None and reason.startswith("translate: none of the configured models")
    assert "models pull Helsinki-NLP/opus-mt-<from>-<to>" in reason and "Helsinki-NLP/opus-mt-zh-en" in reason
    assert "models pull Helsinki-NLP/opus-mt-en-de" not in reason


def test_top_does_not_count_messages_of_cancelled_batches_as_ready(env: dict[str, str], tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("Please pay the invoice.")
    for _ in range(2):
        assert _run(env, "submit", "classify", str(doc), "--labels", "a,b", "--force", "--json")[0] == 0
    code, out = _run(env, "batches", "--json")
    first, _waiting = (json.loads(line)["batch"] for line in out.splitlines())
    assert _run(env, "cancel", first)[0] == 0
    code, out = _run(env, "top", "--once", "--json")
    assert code == 0, out
    (classify,) = [q for q in json.loads(out)["queues"] if q["queue"] == "classify"]
    assert (classify["ready"], classify["stale"]) == (1, 1)  # the second batch waits; the first's is stale
