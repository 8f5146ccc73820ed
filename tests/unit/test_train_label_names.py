"""``docqueue train``: each label's name as one more training example, and labels declared without
examples (a tiny random encoder: seconds)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from docqueue.train_examples import Example
from tests.tiny_classifiers import build_distilbert_cls
from workers.engines.embedding import SentenceEncoder, resolve_model
from workers.engines.linear_head import Head
from workers.training.setfit import TrainParams, train

PAY = ["invoice", "pay", "fee", "tax", "within", "days", "month", "year"]
LAW = ["contract", "party", "agreement", "clause", "law", "court", "breach", "warranty"]
NAME = "warranty breach"  # a label no example carries, named with words of neither topic's mix


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_distilbert_cls(tmp_path_factory.mktemp("tiny") / "encoder")


def rows(n: int = 16) -> list[Example]:
    rng = random.Random(2)
    return [Example(" ".join(rng.choice(PAY if i % 2 else LAW) for _ in range(8)), ("billing" if i % 2 else "legal",))
            for i in range(n)]


def test_a_declared_label_is_learned_from_its_name(tmp_path: Path, encoder_dir: Path) -> None:
    """The head knows the declared label, and the name itself is classified as it: the name was a
    training example, so the model has seen what the label looks like."""
    params = TrainParams.parse({"iterations": 1, "end_to_end_epochs": 6, "batch_size": 4, "learning_rate": 1e-3,
                                "holdout": 0.0, "labels": [NAME, " billing "]})
    assert params.labels == (NAME, "billing")
    card = train(rows(), params, resolve_model(str(encoder_dir)), tmp_path, torch.device("cpu"), lambda *a: None)
    assert card["labels"] == ["billing", "legal", NAME]
    assert card["metrics"]["trained_on"] == 16 and card["metrics"]["label_name_examples"] == 3
    head = Head.from_json(json.loads((tmp_path / "head.json").read_text()))
    predicted = head.predict(SentenceEncoder(resolve_model(str(tmp_path)), torch.device("cpu")).encode([NAME]))
    assert predicted == [[NAME]]


def test_label_names_change_what_is_trained(tmp_path: Path, encoder_dir: Path) -> None:
    """By default the names are trained on: more examples than without them (the same seed and rows)."""
    base = resolve_model(str(encoder_dir))

    def end_to_end_steps(**names: bool) -> set[int]:
        totals: set[int] = set()
        train(rows(), TrainParams(iterations=0, end_to_end_epochs=1, batch_size=4, holdout=0.0, **names), base,
              tmp_path / str(names), torch.device("cpu"),
              lambda stage, done, total, info: totals.add(total) if stage == "end_to_end" else None)
        return totals

    assert end_to_end_steps() == {5}  # 18 examples (16 + the 2 names) in batches of 4
    assert end_to_end_steps(label_names=False) == {4}  # 16


@pytest.mark.parametrize(("params", "message"), [
    ({"labels": ["x"], "label_names": False}, "labels without examples need label_names"),
    ({"labels": "x", "label_names": True}, "labels must be a list"),
    ({"labels": ["x", " "], "label_names": True}, "labels must be a list of non-empty strings"),
])
def test_bad_label_declarations_are_refused(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainParams.parse(params)


def test_cli_refuses_labels_without_label_names(tmp_path: Path) -> None:
    """The producer refuses --labels without --label-names before queueing anything."""
    from producer.cli import main

    examples = tmp_path / "ex.jsonl"
    examples.write_text("".join(json.dumps({"text": e.text, "label": e.labels[0]}) + "\n" for e in rows(4)))
    result = CliRunner().invoke(main, ["--database-url", f"sqlite:///{tmp_path / 'd.db'}", "train", "classify", "m",
                                       "--examples", str(examples), "--labels", "a,b", "--no-label-names"])
    assert result.exit_code == 2 and "--labels needs --label-names" in result.output
