"""Running one queue message: decode, claim, run the resident engine, record. No Celery here."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Engine

from docqueue.errors import DocumentError
from docqueue.schema import TaskMessage
from workers import results
from workers.engines import Outcome, TaskEngine
from workers.registry import Registry

log = logging.getLogger(__name__)


def run_engine(engine: TaskEngine, texts: list[str], params: dict[str, Any]) -> list[Outcome]:
    """The whole batch in one call; if that raises, each document alone, so one bad document
    fails only itself and its error names what went wrong."""
    try:
        outcomes = engine.run(texts, params)
        if len(outcomes) != len(texts):
            raise RuntimeError(f"engine returned {len(outcomes)} outcomes for {len(texts)} documents")
        return outcomes
    except Exception:
        if len(texts) == 1:
            raise
        log.exception("batch of %d failed; retrying its documents one by one", len(texts))
    isolated: list[Outcome] = []
    for text in texts:
        try:
            isolated.extend(engine.run([text], params))
        except Exception as e:
            isolated.append(DocumentError("engine_error", f"{type(e).__name__}: {e}"))
    return isolated


def process_message(*, task: str, kwargs: dict[str, Any], db: Engine, registry: Registry, worker: str) -> int:
    """Process one message; returns the number of jobs whose outcome this call stored."""
    message = TaskMessage.decode(kwargs)
    job_ids = message.jobs or results.materialize_inline(db, task, message)
    claimed = results.claim(db, job_ids, worker)
    if not claimed:
        log.info("message for %d job(s): all already finished, nothing to do", len(job_ids))
        return 0
    model = message.params.get("model")
    revision = message.params.get("model_revision")
    try:
        engine = registry.get(task, str(model) if model else None, str(revision) if revision else None)
    except DocumentError as e:
        # The submission named a model this worker cannot load: every document says so.
        return results.record(db, [(c.job_id, e) for c in claimed], str(model) if model else None, None)
    try:
        outcomes = run_engine(engine, [c.text for c in claimed], message.params)
    except Exception as e:  # a single document that crashed the engine
        outcomes = [DocumentError("engine_error", f"{type(e).__name__}: {e}")]
    return results.record(db, zip([c.job_id for c in claimed], outcomes, strict=True),
                          engine.model_id, engine.model_revision)
