"""ops/examples/node runs as an integrator would run it: ``npm install`` (the real npm registry), then
``node publish.mjs`` against this test's Redis DB, a real worker, and the outcomes read back.

Skipped with the reason where ``node``/``npm`` is absent or the registry cannot be reached; under
CI (``CI`` set) that is a failure, as for the other services (tests/conftest.py): CI has node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT, service_env, unavailable
from tests.helpers import cli_json, wait_until
from tests.integration.test_contract import _decode
from tests.integration.test_inline_contract import view_rows

EXAMPLES = ROOT / "ops" / "examples" / "node"


@pytest.fixture(scope="session")
def node_examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ops/examples/node with its dependencies installed, once per test session."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        unavailable(f"{' and '.join(missing)} not on PATH; install Node.js 18+ to run the Node examples")
    work = tmp_path_factory.mktemp("node-examples")
    for item in EXAMPLES.iterdir():
        if item.is_file():
            shutil.copy(item, work / item.name)
    proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel", "error"], cwd=work,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        unavailable(f"npm install failed (is the npm registry reachable?):\n{proc.stdout}\n{proc.stderr}")
    return work


def test_publish_mjs_end_to_end(node_examples: Path, sqlite_url: str, clean_redis: str, tmp_path: Path,
                                start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    docs = tmp_path / "tickets.jsonl"
    docs.write_text("\n".join(json.dumps(d) for d in [
        {"id": "ticket-1", "text": "Invoice 991: amount due $120.00, payable within 30 days.",
         "metadata": {"owner": "billing"}},
        {"id": "ticket-2", "text": "This Agreement is entered into by and between the parties hereto."},
        {"id": "ticket-3", "text": "Please find attached the invoice for March; payment is due on receipt."},
    ]) + "\n")
    proc = subprocess.run(["node", "publish.mjs", "classify", "node-crm-1", str(docs), "--params",
                           json.dumps({"labels": ["contract", "invoice"]}), "--correlation-id", "order-77",
                           "--per-message", "2"],
                          cwd=node_examples, env={**os.environ, "REDIS_URL": clean_redis}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"batch": "node-crm-1", "messages": 2, "documents": 3}

    # what Node wrote follows the published schemas (read back before any worker runs)
    client = redis.Redis.from_url(clean_redis)
    items = client.lrange("classify", 0, -1)
    assert len(items) == 2
    assert sorted(len(_decode(raw, "classify")["documents"]) for raw in items) == [1, 2]

    start_worker(env)
    wait_until(lambda: cli_json(env, "status", "node-crm-1", "--json")["succeeded"] == 3, what="the Node batch")
    rows = {r["external_id"]: r for r in view_rows(sqlite_url, "node-crm-1")}
    assert rows["ticket-1"]["result"]["label"] == "invoice" and rows["ticket-2"]["result"]["label"] == "contract"
    assert {r["correlation_id"] for r in rows.values()} == {"order-77"}

    # a bad batch id is refused by the example itself, before anything is published
    bad = subprocess.run(["node", "publish.mjs", "classify", "bad batch", str(docs)], cwd=node_examples,
                         env={**os.environ, "REDIS_URL": clean_redis}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "batch id" in bad.stderr
    assert client.llen("classify") == 0
