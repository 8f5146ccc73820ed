"""A mixed folder of real files through the real CLI and a real worker, on SQLite and PostgreSQL:
every document accounted for, unreadable files failed with their specific reason, export metadata
returned, and a re-submission answered from earlier results without running the model."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from docqueue.models import Job
from tests.conftest import service_env
from tests.formats import builders as b
from tests.formats.test_loaders import CONTRACT_P1, CONTRACT_P3, FRENCH
from tests.helpers import cli_json, migrate_if_postgres, results_jsonl

LABELS = "contract,invoice,casual conversation"
TOTAL = 15  # 13 files read (2 skipped: hidden, excluded), the CSV has 2 rows, the e-mail 2 attachments
FAILURES = {
    "locked.pdf": "encrypted_pdf",
    "broken.pdf": "corrupt_pdf",
    "scan.pdf": "no_text_layer",
    "broken.docx": "corrupt_docx",
    "data.xyz": "unsupported_format",
    "photo.png": "unsupported_format",  # an attachment of mail.eml
}


def _mixed_inbox(folder: Path) -> Path:
    msa = b.pdf_bytes([[*CONTRACT_P1, "1. Services. The Supplier shall provide the services in Schedule 1."],
                       CONTRACT_P3])
    b.write(folder / "msa.pdf", msa)
    b.write(folder / "locked.pdf", b.encrypted_pdf_bytes(msa, "s3cret"))
    b.write(folder / "broken.pdf", msa[: len(msa) // 3])
    b.write(folder / "scan.pdf", b.pdf_bytes([None]))
    b.write(folder / "invoices" / "invoice.docx", b.docx_bytes(
        ["INVOICE 7731", "Bill to: Beta GmbH"], [["Item", "Amount"], ["Consulting, October", "1 200.00 EUR"]],
        after=("Total due: 1 200.00 EUR. Payment within 30 days to IBAN DE89 3704 0044 0532 0130 00.",)))
    b.write(folder / "broken.docx", b"plain text saved with a .docx name")
    b.write(folder / "notice.html", b.html_bytes())
    b.write(folder / "mail.eml", b.eml_bytes([("signed.pdf", msa, "application/pdf"),
                                              ("photo.png", b"\x89PNG\r\n\x1a\n", "image/png")]))
    b.write(folder / "tickets.csv", b.csv_bytes([
        {"ticket": "T-1", "body": "hey, how are you doing? long time no see!", "owner": "ops", "priority": "3"},
        {"ticket": "T-2", "body": "Invoice 7731 for 1 200 EUR is attached, payment due in 30 days.",
         "owner": "finance", "priority": "1"}]))
    b.write(folder / "tickets.jsonl", b.jsonl_bytes([{"ticket": "J-1", "body": "Thanks for lunch yesterday!",
                                                      "owner": "hr", "tags": ["social"]}]))
    b.write(folder / "contrat.txt", FRENCH.encode("cp1252"))
    b.write(folder / "data.xyz", b"\x00\x01")
    b.write(folder / "debug.log", b"excluded by --exclude")
    b.write(folder / ".hidden.txt", b"skipped: hidden")
    return folder


def _jobs(database_url: str, batch: str) -> dict[str, Job]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(Job).where(Job.batch_id == batch)).all()
            return {row.id: row for row in rows}
    finally:
        engine.dispose()


def test_mixed_folder_end_to_end(database_url: str, clean_redis: str, tmp_path: Path, start_worker) -> None:
    env = service_env(clean_redis, database_url, tmp_path)
    migrate_if_postgres(env)
    inbox = _mixed_inbox(tmp_path / "inbox")
    start_worker(env)
    submit = ("submit", "classify", str(inbox), "--labels", LABELS, "--text-field", "body", "--id-field", "ticket",
              "--exclude", "*.log", "--wait", "--timeout", "300", "--json")
    first = cli_json(env, *submit, exit_code=5)  # some documents fail, on purpose
    batch = first["batch"]
    assert first["documents"] == TOTAL and first["reused"] == 0
    assert first["status"]["failed"] == len(FAILURES) and first["status"]["succeeded"] == TOTAL - len(FAILURES)

    rows = results_jsonl(env, batch)
    names = [Path(r["document"]).name for r in rows]
    assert "debug.log" not in names and ".hidden.txt" not in names
    failed = {Path(r["document"]).name: r["error"]["kind"] for r in rows if r["status"] == "failed"}
    assert failed == FAILURES
    by_id = {r["id"]: r for r in rows if "id" in r}
    assert set(by_id) == {"T-1", "T-2", "J-1"}
    assert by_id["T-2"]["metadata"] == {"owner": "finance", "priority": "1"} and by_id["T-2"]["row"] == 2
    assert by_id["J-1"]["metadata"] == {"owner": "hr", "tags": ["social"]}
    assert by_id["T-2"]["result"]["label"] == "invoice"
    by_name = {Path(r["document"]).name: r for r in rows}
    assert by_name["invoice.docx"]["result"]["label"] == "invoice"
    assert by_name["msa.pdf"]["result"]["label"] == "contract"
    assert len(by_name["msa.pdf"]["page_offsets"]) == 2 and len(by_name["signed.pdf"]["page_offsets"]) == 2
    assert by_name["mail.eml"]["metadata"]["from"] == "Dana Smith <dana@example.com>"
    assert all("reused_from" not in r for r in rows)

    # the same files again: nothing is queued for the model, every success is a copy of a real run
    again = cli_json(env, *submit, exit_code=5)
    assert again["documents"] == TOTAL and again["reused"] == TOTAL - len(FAILURES)
    assert again["status"]["succeeded"] == TOTAL - len(FAILURES)
    first_jobs = _jobs(database_url, batch)
    reused_rows = results_jsonl(env, again["batch"])
    jobs = _jobs(database_url, again["batch"])
    for row in reused_rows:
        job = jobs[next(j.id for j in jobs.values() if j.document_id == row["document_id"])]
        if row["status"] == "succeeded":
            original = first_jobs[row["reused_from"]]
            assert job.attempts == 0 and job.started_at is None and job.worker is None  # no model run
            assert original.attempts == 1 and row["result"] == original.result
        else:
            assert row["error"]["kind"] == FAILURES[Path(row["document"]).name] and "reused_from" not in row

    # --force runs the model again
    forced = cli_json(env, *submit, "--force", exit_code=5)
    assert forced["reused"] == 0 and forced["status"]["succeeded"] == TOTAL - len(FAILURES)
    forced_jobs = _jobs(database_url, forced["batch"])
    assert all(j.reused_from is None for j in forced_jobs.values())
    assert sum(j.attempts == 1 for j in forced_jobs.values()) == TOTAL - len(FAILURES)
