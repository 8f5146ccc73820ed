"""Schedules and inbox folders on real processes: ``docqueue beat`` (two of them side by side), a real
worker, the real CLI, Redis and the database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from docqueue import db
from tests.conftest import ROOT, service_env
from tests.helpers import cli, cli_json, migrate_if_postgres, wait_until

LABELS = "contract,invoice,casual conversation"
TEXTS = {
    "invoice-1.txt": "Invoice 7731. Amount due: 1,250.00 EUR for consulting services. Please pay within 30 days.",
    "contract-1.txt": "This Agreement is entered into by and between Alpha Ltd and Beta GmbH. The parties agree "
                      "to the following terms and obligations. This Agreement is governed by the laws of England.",
    "chat-1.txt": "Hey, how are you doing today? I never told you, but I really liked the movie.",
}


class Beat:
    """A real ``docqueue beat`` process."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log_path = log
        self._log = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "producer.cli", "beat", "--max-interval", "0.5", *args],
                                     env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def _old_file(path: Path, text: str, age_s: float = 30) -> Path:
    """A file written ``age_s`` ago: settled for any --settle below that."""
    path.write_text(text, encoding="utf-8")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def _rows(url: str, query: str, **params: object) -> list[tuple]:
    with db.get_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(query), params)]


def test_beat_worker_inbox_every_2s_two_beats(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                              start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, OMP_NUM_THREADS="1")
    inbox, done, failed, outbox = (tmp_path / n for n in ("inbox", "done", "failed", "outbox"))
    inbox.mkdir()
    _old_file(inbox / "invoice-1.txt", TEXTS["invoice-1.txt"])
    _old_file(inbox / "contract-1.txt", TEXTS["contract-1.txt"])
    cli(env, "schedule", "add", "inbox", "--every", "2s", "classify", str(inbox), "--labels", LABELS,
        "--settle", "1s", "--move-done", str(done), "--move-failed", str(failed), "--outbox", str(outbox))
    start_worker(env)
    beats = [Beat(env, tmp_path / f"beat-{n}.log") for n in range(2)]
    try:
        wait_until(lambda: {p.name for p in done.glob("*.txt")} == {"invoice-1.txt", "contract-1.txt"},
                   timeout=240, what="the first two files done")
        # files dropped in while beats and worker run: each is taken by one run, once
        _old_file(inbox / "chat-1.txt", TEXTS["chat-1.txt"])
        _old_file(inbox / "empty.txt", "")
        wait_until(lambda: (done / "chat-1.txt").exists() and (failed / "empty.txt").exists()
                   and (outbox / "empty.txt.json").exists(), timeout=240, what="the later files done")
        time.sleep(4)  # two more due times with nothing new
    finally:
        for b in beats:
            b.stop()
    assert not list(inbox.glob("*.txt"))  # every file moved out of the inbox

    # each file processed once: one document per file over all of the schedule's batches
    schedule_id = _rows(sqlite_url, "SELECT id FROM schedule WHERE name = 'inbox'")[0][0]
    sources = _rows(sqlite_url, "SELECT d.source FROM document d JOIN batch b ON b.id = d.batch_id "
                                "WHERE b.schedule_id = :s", s=schedule_id)
    assert Counter(Path(s).name for (s,) in sources) == {
        "invoice-1.txt": 1, "contract-1.txt": 1, "chat-1.txt": 1, "empty.txt": 1}
    # no due time fired twice: one run row per due time, one batch per submitted run, none without a run
    runs = _rows(sqlite_url, "SELECT due_at, outcome, batch_id FROM schedule_run WHERE schedule_id = :s",
                 s=schedule_id)
    assert len(runs) >= 3 and max(Counter(due for due, _, _ in runs).values()) == 1
    batches = {b for (b,) in _rows(sqlite_url, "SELECT id FROM batch WHERE schedule_id = :s", s=schedule_id)}
    assert sorted(b for _, outcome, b in runs if outcome == "submitted") == sorted(batches)
    assert {outcome for _, outcome, _ in runs} <= {"submitted", "nothing_new", "skipped"}
    assert "nothing_new" in {outcome for _, outcome, _ in runs}
    # the two beats contended for the same due times, and the Redis lock settled each one
    logs = beats[0].log() + beats[1].log()
    assert logs.count("is held by another beat") >= 2, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]

    # the outbox: one JSON per file, named after it, with its result
    invoice = json.loads((outbox / "invoice-1.txt.json").read_text())
    assert invoice["status"] == "succeeded" and invoice["schedule"] == "inbox" and invoice["batch"] in batches
    assert invoice["documents"][0]["result"]["label"] == "invoice"
    assert json.loads((outbox / "contract-1.txt.json").read_text())["documents"][0]["result"]["label"] == "contract"
    empty = json.loads((outbox / "empty.txt.json").read_text())
    assert empty["status"] == "failed" and empty["documents"][0]["error"]["kind"] == "empty_document"

    listed = cli_json(env, "schedule", "list", "--json")
    assert listed["name"] == "inbox" and listed["files"] == {"done": 3, "failed": 1}
    assert listed["last_run"]["outcome"] in ("nothing_new", "submitted", "skipped")


def test_overlap_skips_while_previous_batch_unfinished(database_url: str, clean_redis: str, tmp_path: Path) -> None:
    """No worker: the first run's batch stays queued, so the next run is skipped (and recorded so) until
    the batch is finished (here: cancelled); files found meanwhile wait for the next run."""
    env = service_env(clean_redis, database_url, tmp_path)
    migrate_if_postgres(env)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _old_file(inbox / "a.txt", TEXTS["invoice-1.txt"])
    cli(env, "schedule", "add", "o", "--every", "1h", "classify", str(inbox), "--labels", LABELS, "--settle", "0s")
    first = cli_json(env, "schedule", "run", "o", "--json")
    assert first["outcome"] == "submitted" and first["documents"] == 1
    _old_file(inbox / "b.txt", TEXTS["chat-1.txt"])
    second = cli_json(env, "schedule", "run", "o", "--json")
    assert second["outcome"] == "skipped" and second["batch"] is None
    assert first["batch"] in second["detail"] and "unfinished" in second["detail"]
    assert _rows(database_url, "SELECT count(*) FROM inbox_file")[0][0] == 1  # b.txt not taken by the skip
    cli(env, "cancel", first["batch"])
    third = cli_json(env, "schedule", "run", "o", "--json")
    assert third["outcome"] == "submitted" and third["documents"] == 1 and third["batch"] != first["batch"]
    sources = _rows(database_url, "SELECT source FROM document WHERE batch_id = :b", b=third["batch"])
    assert [Path(s).name for (s,) in sources] == ["b.txt"]  # a.txt was taken before: not again
    outcomes = [o for (o,) in _rows(database_url, "SELECT outcome FROM schedule_run ORDER BY fired_at")]
    assert outcomes == ["submitted", "skipped", "submitted"]
    schedule_of = {b: s for b, s in _rows(database_url, "SELECT id, schedule_id FROM batch")}
    sid = _rows(database_url, "SELECT id FROM schedule WHERE name = 'o'")[0][0]
    assert schedule_of == {first["batch"]: sid, third["batch"]: sid}


def test_settle_waits_for_a_file_being_written(sqlite_url: str, clean_redis: str, tmp_path: Path) -> None:
    """A file whose writer is still appending is left for a later run, then taken whole."""
    env = service_env(clean_redis, sqlite_url, tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cli(env, "schedule", "add", "s", "--every", "1h", "classify", str(inbox), "--labels", LABELS, "--settle", "3s")
    path = inbox / "growing.txt"
    lines: list[str] = []
    stop = threading.Event()

    def writer() -> None:  # appends until told to stop, however long the run takes to start
        with path.open("w", encoding="utf-8") as f:
            while not stop.is_set():
                lines.append(f"Line {len(lines)} of an invoice for consulting services.")
                f.write(lines[-1] + "\n")
                f.flush()
                stop.wait(0.1)

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.5)
        during = cli_json(env, "schedule", "run", "s", "--json")
    finally:
        stop.set()
        t.join()
    assert during["outcome"] == "nothing_new" and "still being written" in during["detail"], during
    time.sleep(3.2)
    settled = cli_json(env, "schedule", "run", "s", "--json")
    assert settled["outcome"] == "submitted" and settled["documents"] == 1
    text = _rows(sqlite_url, "SELECT text FROM document WHERE batch_id = :b", b=settled["batch"])[0][0]
    assert text.strip().splitlines() == lines  # read whole, not half-written


@pytest.mark.e2e  # its own CLI process
def test_watch_takes_each_new_file_once(sqlite_url: str, clean_redis: str, tmp_path: Path) -> None:
    """``docqueue watch`` in the foreground: files dropped in are submitted once each; the watch's
    schedule row is one `docqueue beat` leaves alone."""
    env = service_env(clean_redis, sqlite_url, tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cli(env, "schedule", "list")  # creates the schema the polls below read
    log = tmp_path / "watch.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "producer.cli", "watch", str(inbox), "--every", "1s",
                                 "--overlap", "allow", "classify", "--labels", LABELS, "--settle", "0s",
                                 "--max-interval", "0.3"],
                                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _old_file(inbox / "one.txt", TEXTS["invoice-1.txt"])
        wait_until(lambda: _rows(sqlite_url, "SELECT count(*) FROM inbox_file")[0][0] == 1, timeout=120,
                   what="the first file taken")
        _old_file(inbox / "two.txt", TEXTS["chat-1.txt"])
        wait_until(lambda: _rows(sqlite_url, "SELECT count(*) FROM inbox_file")[0][0] == 2, timeout=120,
                   what="the second file taken")
        time.sleep(2.5)  # more looks at the folder: nothing taken again
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0, log.read_text()[-3000:]
    sources = [Path(s).name for (s,) in _rows(sqlite_url, "SELECT source FROM document")]
    assert sorted(sources) == ["one.txt", "two.txt"]
    listed = cli_json(env, "schedule", "list", "--json")
    assert listed["watch"] is True and listed["name"].startswith("watch-")
    assert listed["runs"]["submitted"] == 2
    # the looks that found nothing new are kept as one row per streak, not one per second
    assert listed["runs"]["nothing_new"] <= 3


@pytest.mark.e2e  # its own CLI process
def test_a_run_killed_mid_submit_is_resumed_from_what_it_stored(database_url: str, clean_redis: str,
                                                                 tmp_path: Path) -> None:
    """``schedule run`` SIGKILLed after claiming a big export and storing part of it: its run stays
    ``running`` and the file claimed, with no documents recorded. Two looks at a missing heartbeat
    later (two more manual runs) the run is resumed: the documents it stored are kept (none
    cancelled, none stored twice), the rest of the file goes into the same batch, and the file is
    not submitted again by a later run (issue 23 item 12)."""
    rows = 50_000
    env = service_env(clean_redis, database_url, tmp_path, DOCQUEUE_SCHEDULE_HEARTBEAT_S="0.3")
    migrate_if_postgres(env)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    export = "".join(json.dumps({"id": n, "text": f"Invoice {n}. Amount due: {n % 900 + 100}.00 EUR."}) + "\n"
                     for n in range(rows))
    _old_file(inbox / "export.jsonl", export)
    cli(env, "schedule", "add", "big", "--every", "1h", "classify", str(inbox), "--labels", LABELS, "--settle", "0s")
    proc = subprocess.Popen([sys.executable, "-m", "producer.cli", "schedule", "run", "big"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # killed once it has claimed the file and stored some of its jobs
        wait_until(lambda: _rows(database_url, "SELECT count(*) FROM job")[0][0] > 0, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    [(run_id, outcome, batch)] = _rows(database_url, "SELECT id, outcome, batch_id FROM schedule_run")
    assert outcome == "running" and batch is not None
    assert _rows(database_url, "SELECT batch_id, documents FROM inbox_file") == [(batch, None)]
    stored = _rows(database_url, "SELECT count(*) FROM job WHERE batch_id = :b", b=batch)[0][0]
    assert 0 < stored < rows, stored

    time.sleep(1.0)  # past the heartbeat's lifetime (3 x 0.3 s): the first look marks it suspect
    first = cli_json(env, "schedule", "run", "big", "--json")
    assert first["outcome"] == "skipped" and batch in first["detail"]  # its batch still has queued jobs
    time.sleep(1.0)  # the second look, a lifetime later, finds it still silent and resumes it
    second = cli_json(env, "schedule", "run", "big", "--json")
    assert second["outcome"] == "skipped" and batch in second["detail"]  # the resumed batch is unfinished

    [(outcome, documents, detail)] = _rows(database_url, "SELECT outcome, documents, detail FROM schedule_run "
                                                         "WHERE id = :r", r=run_id)
    assert outcome == "submitted" and documents == rows, (outcome, documents, detail)
    assert detail.startswith("interrupted: its process stopped mid-run") and f"{stored} document(s) kept" in detail
    assert _rows(database_url, "SELECT count(*) FROM job WHERE batch_id = :b", b=batch)[0][0] == rows
    assert _rows(database_url, "SELECT count(*) FROM job WHERE status = 'cancelled'")[0][0] == 0
    # every row once, in file order: the stored prefix and the resumed rest meet without a gap or a double
    positions = _rows(database_url, "SELECT d.position, d.source_row FROM document d WHERE d.batch_id = :b "
                                    "ORDER BY d.position", b=batch)
    assert [p for p, _ in positions] == list(range(rows))
    assert len({r for _, r in positions}) == rows
    assert _rows(database_url, "SELECT batch_id, first_position, documents FROM inbox_file") == [(batch, 0, rows)]
    assert _rows(database_url, "SELECT count(*) FROM batch")[0][0] == 1  # the file was not taken again
    listed = cli_json(env, "schedule", "list", "--json")
    assert listed["runs"].get("error", 0) == 0 and listed["last_run"]["outcome"] == "skipped"
