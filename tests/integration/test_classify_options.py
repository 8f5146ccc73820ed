"""classify through the real CLI and a real worker: few-shot examples, multi-label, a fine-tuned model
named per submission, and option errors the CLI must catch before anything is queued."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import FIXTURES, service_env
from tests.helpers import cli, cli_json, results_jsonl
from tests.tiny_classifiers import CLS_LABELS, build_distilbert_cls


def _ledgar(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """An inbox of real provisions (one file each) and an examples file, from the fixture."""
    rows = [json.loads(line) for line in (FIXTURES / "ledgar_fewshot.jsonl").read_text().splitlines()]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    expected = {}
    for r in rows:
        if r["split"] == "test":
            (inbox / f"provision-{r['id']}.txt").write_text(r["text"], encoding="utf-8")
            expected[f"provision-{r['id']}.txt"] = r["label"]
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n"
                                for r in rows if r["split"] == "example"), encoding="utf-8")
    return inbox, examples, expected


def test_classify_options_end_to_end(sqlite_url: str, clean_redis: str, tmp_path: Path, start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_MODEL_DIRS=str(tmp_path))
    start_worker(env)
    inbox, examples, expected = _ledgar(tmp_path)

    # few-shot: the labels come from the examples file; results are stored per document
    batch = cli_json(env, "submit", "classify", str(inbox), "--examples", str(examples), "--wait",
                     "--timeout", "300", "--json")["batch"]
    rows = results_jsonl(env, batch)
    assert len(rows) == len(expected) and all(r["status"] == "succeeded" for r in rows)
    labels = set(expected.values())
    right = 0
    for row in rows:
        result = row["result"]
        assert set(result["scores"]) == labels and result["engine"] == "embedding"
        assert result["labels"] == [result["label"]]
        right += result["label"] == expected[Path(row["document"]).name]
    assert right >= 15, right  # 17/24 measured; zero-shot on the same files gets 12

    # multi-label: independent scores, every label at/above the threshold listed
    batch = cli_json(env, "submit", "classify", str(inbox), "--labels", ",".join(sorted(labels)), "--multi-label",
                     "--threshold", "0.6", "--wait", "--timeout", "300", "--json")["batch"]
    for row in results_jsonl(env, batch):
        result = row["result"]
        assert result["labels"] == sorted((k for k, v in result["scores"].items() if v >= 0.6),
                                          key=lambda k: -result["scores"][k])
    assert any(sum(r["result"]["scores"].values()) > 1.5 for r in results_jsonl(env, batch))

    # a fine-tuned classifier named by the submission: its own labels, loaded by the worker
    model = build_distilbert_cls(tmp_path / "distilbert-cls")
    batch = cli_json(env, "submit", "classify", str(inbox), "--engine", "fine-tuned", "--model", str(model),
                     "--wait", "--timeout", "300", "--json")["batch"]
    for row in results_jsonl(env, batch):
        assert row["status"] == "succeeded", row
        assert set(row["result"]["scores"]) == set(CLS_LABELS) and row["result"]["engine"] == "fine-tuned"
        assert row["model"]["id"] == str(model)

    # asking for an engine the model cannot run fails each document, clearly
    batch = cli_json(env, "submit", "classify", str(inbox / next(iter(expected))), "--labels", "a,b", "--engine",
                     "fine-tuned", "--wait", "--timeout", "300", "--json", exit_code=1)["batch"]
    [row] = results_jsonl(env, batch)
    assert row["status"] == "failed" and row["error"]["kind"] == "wrong_model_kind"


def test_classify_option_errors(sqlite_url: str, clean_redis: str, tmp_path: Path) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    inbox, examples, _ = _ledgar(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a clause"}\n', encoding="utf-8")
    cases = [
        (["--examples", str(bad)], 'line 1 must be an object with non-empty "text" and "label"'),
        (["--labels", "Notices,Headings", "--examples", str(examples)], "examples use labels missing"),
        (["--labels", "only"], "at least two labels"),
        (["--labels", "a,b", "--template", "no slot"], "put {} where the label goes"),
        (["--examples", str(examples), "--engine", "nli"], "cannot use them"),
    ]
    for args, message in cases:
        proc = cli(env, "submit", "classify", str(inbox), *args, check=False)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
    many = tmp_path / "many.jsonl"
    many.write_text('{"text": "t", "label": "a"}\n{"text": "u", "label": "b"}\n' * 3, encoding="utf-8")
    proc = cli({**env, "DOCQUEUE_CLASSIFY_MAX_EXAMPLES": "4"}, "submit", "classify", str(inbox), "--examples",
               str(many), check=False)
    assert proc.returncode == 2 and "at most 4" in proc.stderr
