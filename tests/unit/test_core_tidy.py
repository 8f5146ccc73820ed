"""The core's shared definitions, each written once: unfinished states, the insert that ignores
duplicates, UTC-aware timestamps (by column type, on SQLite and PostgreSQL), the error tree and the
catalogue of every per-document error kind."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import col

from docqueue import errors
from docqueue.db import get_engine, insert_ignoring_duplicates, upgrade
from docqueue.models import Batch, Job
from docqueue.schema import UNFINISHED, WAITING, JobStatus

ROOT = Path(__file__).resolve().parents[2]


def test_unfinished_states_are_the_non_terminal_ones() -> None:
    assert set(UNFINISHED) == {s.value for s in JobStatus} - {"succeeded", "failed", "cancelled"}
    assert set(WAITING) == set(UNFINISHED) - {"running"}
    from producer import batch_control  # the producer uses the core's definition, not a copy

    assert batch_control.UNFINISHED is UNFINISHED


def test_timestamps_come_back_utc_aware_and_duplicates_are_ignored(database_url: str) -> None:
    upgrade(database_url)
    engine = get_engine(database_url)
    berlin = timezone(timedelta(hours=2))
    written = datetime(2026, 12, 6, 9, 30, tzinfo=berlin)
    naive = datetime(2026, 12, 6, 8, 0)  # a naive value written is taken as UTC
    rows = [{"id": "b-aware", "task": "classify", "params": {}, "created_at": written, "webhook_documents": False},
            {"id": "b-naive", "task": "classify", "params": {}, "created_at": naive, "webhook_documents": False}]
    with engine.begin() as conn:
        conn.execute(insert_ignoring_duplicates(conn, Batch), rows)
        conn.execute(insert_ignoring_duplicates(conn, Batch), rows)  # a re-delivery: nothing new, no error
        again = conn.execute(insert_ignoring_duplicates(conn, Batch, ["id"]).values(
            [rows[0], {**rows[1], "id": "b-new"}]).returning(col(Batch.id))).scalars().all()
    assert again == ["b-new"]
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.select(col(Batch.id), col(Batch.created_at))).all())
        oldest = conn.execute(sa.select(sa.func.min(col(Batch.created_at)))).scalar_one()
        later = conn.execute(sa.select(col(Batch.id)).where(
            col(Batch.created_at) > datetime(2026, 12, 6, 7, 45, tzinfo=timezone.utc))).scalars().all()
    assert stored["b-aware"] == written and stored["b-aware"].tzinfo == timezone.utc
    assert stored["b-naive"] == naive.replace(tzinfo=timezone.utc) and stored["b-naive"].tzinfo == timezone.utc
    assert oldest == datetime(2026, 12, 6, 7, 30, tzinfo=timezone.utc) and oldest.tzinfo is not None
    assert sorted(later) == ["b-naive", "b-new"]  # compared as instants, not as wall-clock text
    assert Job.__table__.c.heartbeat_at.type.__class__.__name__ == "UtcDateTime"  # type: ignore[attr-defined]


def test_publish_error_is_in_the_error_tree() -> None:
    from producer import submit

    assert submit.PublishError is errors.PublishError and issubclass(errors.PublishError, errors.DocqueueError)
    error = errors.PublishError(report={"batch": "b"}, pending=3, reason="broker down")
    assert (error.report, error.pending, str(error)) == ({"batch": "b"}, 3, "broker down")


def _raised_kinds() -> set[str]:
    """Every literal kind given to ``DocumentError`` in the worker, the producer and the core."""
    kinds: set[str] = set()
    for package in ("docqueue", "producer", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DocumentError"
                        and node.args and isinstance(node.args[0], ast.Constant)):
                    kinds.add(str(node.args[0].value))
    return kinds


def test_every_document_error_kind_is_catalogued() -> None:
    catalogued = {**errors.LOADER_ERROR_KINDS, **errors.MODEL_ERROR_KINDS, **errors.INLINE_ERROR_KINDS,
                  **errors.ENGINE_ERROR_KINDS, **errors.LLM_ERROR_KINDS}
    raised = _raised_kinds()
    assert {"empty_document", "engine_mismatch", "corrupt_pdf", "invalid_params"} <= raised  # the scan works
    assert sorted(raised - set(catalogued)) == []
    # each kind has one meaning, in one catalogue
    names = [*errors.LOADER_ERROR_KINDS, *errors.MODEL_ERROR_KINDS, *errors.INLINE_ERROR_KINDS,
             *errors.ENGINE_ERROR_KINDS, *errors.LLM_ERROR_KINDS]
    assert len(names) == len(set(names))
