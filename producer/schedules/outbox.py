"""After an inbox batch has finished: each file's results to the outbox, the file moved to the done
or failed folder.

Each file is claimed (``submitted`` -> ``finishing``) before it is handled, so two beats never
write or move the same file; the outbox file is written whole (a temp file renamed), so a reader
never sees half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue.models import InboxFile, Job, Schedule, utcnow
from docqueue.schema import JobStatus, new_id
from producer.batch_control import UNFINISHED
from producer.queries import iter_results


def finish_files(engine: Engine, schedule: Schedule) -> int:
    """Outbox and move the files of this schedule's finished batches; how many files."""
    with engine.connect() as conn:
        # documents is set once the run has stored the file's documents: before that, a batch with
        # no jobs yet would look finished
        batches = list(conn.execute(sa.select(col(InboxFile.batch_id)).distinct().where(
            col(InboxFile.schedule_id) == schedule.id, col(InboxFile.state) == "submitted",
            col(InboxFile.documents).is_not(None))).scalars())
    handled = 0
    for batch in batches:
        with engine.connect() as conn:
            left = conn.execute(sa.select(sa.func.count()).where(
                col(Job.batch_id) == batch, col(Job.status).in_(UNFINISHED))).scalar_one()
            if left:
                continue
            files = [InboxFile.model_validate(r._mapping) for r in conn.execute(
                sa.select(InboxFile).where(col(InboxFile.batch_id) == batch,
                                           col(InboxFile.schedule_id) == schedule.id,
                                           col(InboxFile.state) == "submitted",
                                           col(InboxFile.documents).is_not(None)))]
        for f in files:
            with engine.begin() as conn:
                mine = conn.execute(sa.update(InboxFile).where(col(InboxFile.id) == f.id,
                                                               col(InboxFile.state) == "submitted")
                                    .values(state="finishing")).rowcount
            if mine:
                _finish_file(engine, schedule, f)
                handled += 1
    return handled


def _finish_file(engine: Engine, schedule: Schedule, f: InboxFile) -> None:
    notes: list[str] = []
    first, n = f.first_position or 0, f.documents or 0
    rows = list(iter_results(engine, f.batch_id, positions=(first, first + n)))
    state = "done" if all(r["status"] == JobStatus.succeeded.value for r in rows) else "failed"
    if schedule.outbox:
        try:
            write_outbox(Path(schedule.outbox), schedule, f, rows, state)
        except OSError as e:
            notes.append(f"outbox not written: {e}")
    target = schedule.move_done if state == "done" else schedule.move_failed
    if target:
        try:
            notes.append(f"moved to {move_file(Path(f.path), Path(target), f.relpath)}")
        except OSError as e:
            notes.append(f"not moved: {e}")
    with engine.begin() as conn:
        conn.execute(sa.update(InboxFile).where(col(InboxFile.id) == f.id).values(
            state=state, detail="; ".join(notes) or None, finished_at=utcnow()))


def write_outbox(outbox: Path, schedule: Schedule, f: InboxFile, rows: list[dict[str, Any]], state: str) -> None:
    """``OUTBOX/<path under the inbox>.json``: the file's documents' results, written whole (a temp
    file renamed), so a reader of the outbox never sees half of one."""
    target = outbox / f"{f.relpath}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    body = {"source": f.path, "file": f.relpath, "sha256": f.sha256, "schedule": schedule.name,
            "batch": f.batch_id, "status": "succeeded" if state == "done" else "failed", "documents": rows}
    tmp = target.with_name(f".{target.name}.{new_id()}.tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, target)


def move_file(path: Path, folder: Path, relpath: str) -> Path:
    """Move into ``folder`` under the same relative path; an existing name gets a numbered suffix."""
    target = folder / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while target.exists():
        target = target.with_name(f"{Path(relpath).stem}.{n}{Path(relpath).suffix}")
        n += 1
    shutil.move(str(path), str(target))
    return target
