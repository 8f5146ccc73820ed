"""The ``docqueue_results`` view and document events keep their documented promises (issue 23, 15).

On SQLite and PostgreSQL, in process (no worker: the rows are stored by ``workers.results`` as a
worker stores them, events written by ``docqueue.events`` against the session's real Redis):

- ``result`` is SQL NULL for failed, queued and running rows (it was the JSON text ``null``, so
  ``WHERE result IS NULL`` found none of them), and the result for succeeded ones;
- the document's ``metadata`` is a column of the view and a field of ``document.finished`` (and so
  of its webhook), as the documentation says; it was in neither;
- migration 0008 goes down to the previous view and up again.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from alembic import command

from docqueue import db
from docqueue.errors import DocumentError
from docqueue.events import STREAM, EventSink, decode_entry, emit_finished
from docqueue.models import utcnow
from docqueue.schema import TaskMessage
from docqueue.settings import Settings
from tests.event_checks import validate_event
from workers import results

pytestmark = pytest.mark.integration


def _store(database_url: str) -> tuple[list[str], Any]:
    engine = db.get_engine(database_url)
    message = TaskMessage.decode({"v": 1, "batch": "view-nulls", "params": {"labels": ["a", "b"]}, "documents": [
        {"id": "ok", "text": "fine", "metadata": {"owner": "billing", "n": 1}},
        {"id": "bad", "text": "also fine", "metadata": {"owner": "legal"}},
        {"id": "waiting", "text": "not yet"},
        {"id": "busy", "text": "running now"}]})
    ids = list(results.materialize_inline(engine, "classify", message))
    claimed = results.claim(engine, ids[:2] + ids[3:], "test-worker")
    assert len(claimed) == 3
    finished_at = utcnow()
    results.record_groups(engine, [results.RecordGroup(
        [(ids[0], {"label": "a", "scores": {"a": 0.9, "b": 0.1}}), (ids[1], DocumentError("engine_error", "boom"))],
        "noop", None)], now=finished_at)
    return ids, finished_at


def test_view_gives_sql_null_and_metadata_and_events_carry_metadata(database_url: str, clean_redis: str) -> None:
    if database_url.startswith("postgresql"):
        db.upgrade(database_url)
    engine = db.ensure_schema(database_url)
    ids, finished_at = _store(database_url)
    with engine.connect() as conn:
        rows = {r.external_id: r for r in conn.execute(sa.text(
            "SELECT external_id, status, result, metadata, result IS NULL AS no_result FROM docqueue_results "
            "WHERE batch_id = 'view-nulls'"))}

    def as_json(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    assert {k: (r.status, bool(r.no_result)) for k, r in rows.items()} == {
        "ok": ("succeeded", False), "bad": ("failed", True), "waiting": ("queued", True), "busy": ("running", True)}
    assert as_json(rows["ok"].result)["label"] == "a"
    assert as_json(rows["ok"].metadata) == {"owner": "billing", "n": 1}
    assert as_json(rows["waiting"].metadata) == {}

    client = redis.Redis.from_url(clean_redis)
    sink = EventSink(None, Settings(), redis=client)  # type: ignore[arg-type]  # no webhook: no app needed
    assert emit_finished(sink, engine, finished_at=finished_at, job_ids=ids[:2]).documents == 2
    entries: Any = client.xrange(STREAM, "-", "+")
    events = {e["external_id"]: e for e in (decode_entry(i, f) for i, f in entries)}
    for event in events.values():
        event.pop("stream_id")
        validate_event(event)
    assert events["ok"]["metadata"] == {"owner": "billing", "n": 1}
    assert events["bad"]["metadata"] == {"owner": "legal"} and events["bad"]["result"] is None


def test_migration_0008_goes_down_and_up(database_url: str) -> None:
    db.upgrade(database_url)
    engine = db.get_engine(database_url)

    def columns() -> list[str]:
        with engine.connect() as conn:
            return [c["name"] for c in sa.inspect(conn).get_columns("docqueue_results")]

    assert columns()[-1] == "metadata"
    cfg = db.alembic_config(database_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
    assert "metadata" not in columns() and "result" in columns()
    db.upgrade(database_url)
    assert columns()[-1] == "metadata"
