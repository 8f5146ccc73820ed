"""Every shipped JSON Schema, read by a second validator: ajv (Node), in its default strict mode.

Why: jsonschema (Python) ignores keywords it does not know, so ``x-docqueue-redis`` in the
envelope schema passed our own checks while ajv, what a Node integrator uses, refused to compile
the file at all ("strict mode: unknown keyword"). Here each file under docqueue/contract must
compile with ``new Ajv2020()`` plus ajv-formats, and real instances must validate: an envelope as a
foreign publisher pushes it, its body, and a ``message.rejected`` event as a worker writes it.

``npm install ajv ajv-formats`` needs the npm registry; without node/npm or the registry the test
is skipped with the reason (a failure under CI), as tests/integration/test_node_examples.py does.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from docqueue.deadletter import ORIGIN_TRANSPORT
from docqueue.rejections import Refusal, rejected_event
from tests.conftest import ROOT, unavailable
from tests.integration.test_foreign_publisher import foreign_message

CONTRACT = ROOT / "docqueue" / "contract"
SCRIPT = Path(__file__).parent / "node" / "check_schemas.mjs"


@pytest.fixture(scope="session")
def ajv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        unavailable(f"{' and '.join(missing)} not on PATH; install Node.js 18+ to check the schemas with ajv")
    work = tmp_path_factory.mktemp("ajv")
    (work / "package.json").write_text(json.dumps({"private": True, "type": "module"}))
    shutil.copy(SCRIPT, work / SCRIPT.name)
    proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel", "error", "ajv@8",
                           "ajv-formats@3"], cwd=work, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        unavailable(f"npm install failed (is the npm registry reachable?):\n{proc.stdout}\n{proc.stderr}")
    return work


def test_every_shipped_schema_compiles_and_validates_in_ajv_strict_mode(ajv_dir: Path) -> None:
    kwargs = {"v": 1, "batch": "ajv-1", "params": {"labels": ["a", "b"]},
              "documents": [{"id": "d1", "text": "Invoice 12", "metadata": {"owner": "billing"}}]}
    envelope = json.loads(foreign_message("docqueue.classify", "classify", kwargs, correlation_id="req-1"))
    body = json.loads(base64.b64decode(envelope["body"]))
    event = rejected_event("0" * 32, Refusal(queue="classify", kind="too_deeply_nested", reason="too deep",
                                             origin=ORIGIN_TRANSPORT, batch="ajv-1", correlation_id="req-1"), 2048)
    unread = rejected_event("1" * 32, Refusal(queue="classify", kind="not_json", reason="not JSON",
                                              origin=ORIGIN_TRANSPORT), 5)
    instances = {"envelope.schema.json": [envelope], "classify.message.schema.json": [body[1]],
                 "event.schema.json": [event.data, unread.data]}
    proc = subprocess.run(["node", SCRIPT.name, str(CONTRACT)], cwd=ajv_dir, input=json.dumps(instances),
                          capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    compiled = {line["schema"] for line in lines if line.get("compiled")}
    assert compiled == {p.name for p in CONTRACT.glob("*.schema.json")}
    assert {line["schema"]: line["checked"] for line in lines if line["schema"] in instances} == {
        name: len(found) for name, found in instances.items()}
