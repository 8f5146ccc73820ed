"""Inbox folders: which settled files a run may take, and claiming them for one batch.

A schedule remembers every file it took (path + content sha256, ``inbox_file``): a file is
processed once, a changed file counts as new. A file still being written (younger than the
schedule's settle time, or changing size/mtime while it is hashed) waits for a later run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue.db import insert_ignoring_duplicates
from docqueue.models import InboxFile, Schedule, utcnow
from docqueue.schema import new_id
from producer.loaders import LoadOptions, iter_paths


@dataclass(frozen=True)
class Candidate:
    """A settled file a run may take."""

    path: str
    relpath: str
    sha256: str
    size: int

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.path}\x00{self.sha256}".encode()).hexdigest()


@dataclass
class Scan:
    files: list[Candidate]
    waiting: int = 0  # still being written: left for a later run
    missing: int = 0  # a source that does not exist (yet)


def load_options(schedule: Schedule) -> LoadOptions:
    """The loader options stored with the schedule (the submit options it was added with)."""
    o = schedule.load_options or {}
    return LoadOptions(include=tuple(o.get("include") or ()), exclude=tuple(o.get("exclude") or ()),
                       hidden=bool(o.get("hidden")), text_field=o.get("text_field") or "text",
                       id_field=o.get("id_field") or None, clean_text=bool(o.get("clean_text")))


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def scan_sources(schedule: Schedule, now: datetime | None = None) -> Scan:
    """The files of the schedule's sources that have settled, in order, with their content hash.

    Settled: modified at least ``settle_s`` ago, and the same size and mtime after hashing as before
    (a writer still appending is caught even when it keeps mtime old). A file that cannot be opened
    is still taken, under a key of its size and mtime, so the loader records why (``unreadable``)."""
    now_ts = (now or utcnow()).timestamp()
    options = load_options(schedule)
    scan = Scan(files=[])
    for source in schedule.sources:
        root = Path(source)
        if not root.exists() and not any(c in source for c in "*?["):
            scan.missing += 1
            continue
        for path in iter_paths([source], options.include, options.exclude, options.hidden):
            try:
                before = path.stat()
            except OSError:
                continue  # vanished between listing and looking: not ours to report
            if now_ts - before.st_mtime < schedule.settle_s:
                scan.waiting += 1
                continue
            try:
                sha = _hash_file(path)
            except OSError:
                sha = hashlib.sha256(f"unreadable:{before.st_size}:{before.st_mtime_ns}".encode()).hexdigest()
            try:
                after = path.stat()
            except OSError:
                continue
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                scan.waiting += 1
                continue
            relpath = str(path.relative_to(root)) if root.is_dir() else path.name
            scan.files.append(Candidate(str(path), relpath, sha, before.st_size))
    return scan


def claim_files(engine: Engine, schedule_id: str, batch_id: str, files: list[Candidate]) -> list[Candidate]:
    """Record the files this run takes; those the schedule already took (same path and content) are
    left out. One insert that ignores duplicates, so two runs racing for a file cannot both take it."""
    claimed: set[str] = set()
    now = utcnow()
    with engine.begin() as conn:
        for start in range(0, len(files), 500):
            rows = [{"id": new_id(), "schedule_id": schedule_id, "file_key": f.key, "path": f.path,
                     "relpath": f.relpath, "sha256": f.sha256, "size": f.size, "batch_id": batch_id,
                     "state": "submitted", "created_at": now} for f in files[start:start + 500]]
            stmt = insert_ignoring_duplicates(conn, InboxFile, ["schedule_id", "file_key"]).values(rows).returning(
                col(InboxFile.file_key))
            claimed.update(conn.execute(stmt).scalars())
    return [f for f in files if f.key in claimed]

