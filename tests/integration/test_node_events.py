"""ops/examples/node/events.mjs, run by Node against the test's Redis: it reads a finished batch's
events from the stream's history, and follows a batch live (XREAD BLOCK) until its batch.finished.

Needs ``node`` and ``npm`` (the example is installed with ``npm install`` into a temporary copy).
Locally a machine without them skips with the reason; under CI (``CI`` set) that is a failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT, SharedWorker
from tests.event_checks import of_batch, validate_event
from tests.helpers import cli, cli_json, wait_until
from tests.integration.test_foreign_publisher import foreign_message

EXAMPLE = ROOT / "ops" / "examples" / "node"


@pytest.fixture(scope="module")
def node_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        msg = f"{' and '.join(missing)} not on PATH: the Node example cannot run"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    copy = tmp_path_factory.mktemp("node-example")
    for name in ("package.json", "events.mjs"):
        shutil.copy(EXAMPLE / name, copy / name)
    done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel", "error"], cwd=copy,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    return copy


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("shared_worker", ["sqlite"], indirect=True)
def test_events_mjs_reads_and_follows_the_stream(node_example: Path, shared_worker: SharedWorker,
                                                 tmp_path: Path) -> None:
    env = shared_worker.env(tmp_path)
    clean_redis = shared_worker.redis_url  # shared: the test reads only its own batches' events
    live_batch = f"node-live-{uuid.uuid4().hex[:8]}"
    (tmp_path / "a.txt").write_text("Invoice 5: amount due $75.00, payable within 30 days.")
    (tmp_path / "b.txt").write_text("  ")
    batch = cli_json(env, "submit", "classify", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"),
                     "--labels", "contract,invoice", "--json")["batch"]
    # b.txt fails at submit, a.txt in the worker; submit may write batch.finished (on seeing every job
    # finished) before the worker's document event lands (docqueue/events.py): wait for all three
    wait_until(lambda: of_batch(clean_redis, batch, "batch.finished")
               and len(of_batch(clean_redis, batch, "document.finished")) == 2, timeout=180,
               what="batch.finished and both document events")
    node_env = {**os.environ, "REDIS_URL": clean_redis}

    # history: the batch's events up to its batch.finished, exactly as `docqueue events --json` prints them
    done = subprocess.run(["node", "events.mjs", "--batch", batch, "--until-finished"], cwd=node_example,
                          env=node_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    from_node = _lines(done.stdout)
    from_cli = _lines(cli(env, "events", "--batch", batch, "--json").stdout)
    assert [e["type"] for e in from_cli].count("document.finished") == 2
    assert from_node[-1]["type"] == "batch.finished" and from_node == from_cli[:len(from_node)]
    assert sum(from_node[-1]["counts"].values()) == 2
    for event in from_cli:
        validate_event({k: v for k, v in event.items() if k != "stream_id"})

    # live: Node is already blocked in XREAD when the batch is published, and stops at its batch.finished
    follower = subprocess.Popen(["node", "events.mjs", "--batch", live_batch, "--until-finished", "--since", "$"],
                                cwd=node_example, env=node_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        wait_until(lambda: "xread" in _blocked_commands(clean_redis), timeout=30, what="node blocked in XREAD")
        kwargs = {"v": 1, "batch": live_batch, "params": {"labels": ["contract", "invoice"]},
                  "documents": [{"id": "n-1", "text": "This Agreement is entered into by the parties."}]}
        redis.Redis.from_url(clean_redis).lpush("classify", foreign_message("docqueue.classify", "classify", kwargs))
        out, err = follower.communicate(timeout=180)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    live = _lines(out)
    assert [(e["type"], e.get("external_id")) for e in live] == [("document.finished", "n-1"),
                                                                  ("batch.finished", None)]
    assert live == _lines(cli(env, "events", "--batch", live_batch, "--json").stdout)


def _blocked_commands(redis_url: str) -> list[str]:
    """The last command of each client of the test's Redis DB (a client blocked in XREAD shows xread)."""
    client = redis.Redis.from_url(redis_url)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    return [str(c.get("cmd", "")).lower() for c in client.client_list() if int(c.get("db", -1)) == int(db)]
