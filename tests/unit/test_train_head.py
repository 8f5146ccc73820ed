"""The trained head's decision rule (thresholds chosen on a calibration slice, stored with the model,
older models still loadable) and the end-to-end phase, on synthetic data and a tiny random encoder."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from docqueue import model_store, train_examples
from docqueue.params import ClassifyParams
from docqueue.settings import get_settings
from docqueue.train_examples import Example
from tests.tiny_classifiers import build_distilbert_cls
from workers.engines.classify_common import classification
from workers.engines.embedding import resolve_model
from workers.engines.linear_head import Head
from workers.registry import Registry
from workers.training.head import MIN_LABEL_POSITIVES, choose_thresholds, micro_f1
from workers.training.setfit import TrainParams, carve, train
from workers.training.task import train_job

PAY = ["invoice", "pay", "fee", "tax", "within", "days", "month", "year"]
LAW = ["contract", "party", "agreement", "clause", "law", "court", "breach", "warranty"]
NEUTRAL = ["the", "service", "user", "account", "website", "content", "terms", "use"]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_distilbert_cls(tmp_path_factory.mktemp("tiny") / "encoder")


def rare_label_rows(n: int, seed: int = 3) -> list[Example]:
    """Mostly label-free sentences; every sixth is about paying ("billing"), every ninth about law
    ("legal"): each label rare, as in UNFAIR-ToS."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 6 == 0:
            rows.append(Example(" ".join(rng.choice(PAY) for _ in range(8)), ("billing",)))
        elif i % 9 == 0:
            rows.append(Example(" ".join(rng.choice(LAW) for _ in range(8)), ("legal",)))
        else:
            rows.append(Example(" ".join(rng.choice(NEUTRAL) for _ in range(8)), ()))
    return rows


def test_thresholds_are_chosen_where_rare_positives_score() -> None:
    """Scores of a rare label's positives sit well below 0.5: the chosen threshold lies between them and
    the negatives', so its F1 on the slice is 1 where 0.5 gave 0."""
    gen = torch.Generator().manual_seed(0)
    n = 200
    y = torch.zeros((n, 3))
    y[:12, 0] = 1  # rare label: 12 positives
    y[12:18, 1] = 1  # rarer: 6 positives
    y[18:20, 2] = 1  # too few for a threshold of its own
    probs = 0.02 + 0.08 * torch.rand((n, 3), generator=gen)
    probs[:12, 0] = 0.25 + 0.1 * torch.rand(12, generator=gen)
    probs[12:18, 1] = 0.4 + 0.1 * torch.rand(6, generator=gen)
    probs[18:20, 2] = 0.3
    overall, per_label = choose_thresholds(probs, y)
    assert probs[12:, 0].max() < per_label[0] <= probs[:12, 0].min()
    assert torch.cat([probs[:12, 1], probs[18:, 1]]).max() < per_label[1] <= probs[12:18, 1].min()
    assert int(y[:, 2].sum()) < MIN_LABEL_POSITIVES and per_label[2] == overall
    head = Head(["a", "b", "c"], torch.zeros((3, 2)), torch.zeros(3), True, overall, per_label)
    gold = [[k for k, x in zip("abc", row, strict=True) if x] for row in y.tolist()]
    cut = head.cutoffs()
    chosen = [[k for j, k in enumerate("abc") if row[j] >= cut[j]] for row in probs.tolist()]
    assert micro_f1(gold, chosen) > 0.9
    assert micro_f1(gold, [[k for j, k in enumerate("abc") if row[j] >= 0.5] for row in probs.tolist()]) == 0


def test_per_label_thresholds_in_results_and_a_document_may_get_no_label() -> None:
    low = classification(["x", "y"], [0.3, 0.2], multi_label=True, threshold=[0.25, 0.5], engine="fine-tuned")
    assert low["labels"] == ["x"] and low["label"] == "x"
    none = classification(["x", "y"], [0.1, 0.2], multi_label=True, threshold=[0.25, 0.5], engine="fine-tuned")
    assert none["labels"] == [] and set(none["scores"]) == {"x", "y"}
    assert classification(["x", "y"], [0.3, 0.2], multi_label=True, threshold=0.1, engine="e")["labels"] == ["x", "y"]


def test_head_without_thresholds_still_loads() -> None:
    """A head.json written before per-label thresholds existed reads as one threshold for every label."""
    old = {"labels": ["a", "b"], "multi_label": True, "threshold": 0.3, "weight": [[1.0, 0.0], [0.0, 1.0]],
           "bias": [0.0, 0.0]}
    head = Head.from_json(old)
    assert head.thresholds is None and head.cutoffs() == [0.3, 0.3]
    assert "thresholds" not in head.to_json()
    new = Head.from_json({**old, "thresholds": [0.2, 0.7]})
    assert new.cutoffs() == [0.2, 0.7] and Head.from_json(new.to_json()).thresholds == [0.2, 0.7]


def test_calibration_slice_takes_some_of_every_repeated_label_set() -> None:
    rows = [*rare_label_rows(60), Example("once only", ("solo",))]
    fit, calibration = carve(rows, 0.25, seed=0)
    assert len(fit) + len(calibration) == len(rows)
    assert {e.labels for e in calibration} == {("billing",), ("legal",), ()}
    assert ("solo",) in {e.labels for e in fit}  # seen once: trained on, never set aside


def test_multi_label_training_stores_calibrated_thresholds(tmp_path: Path, encoder_dir: Path) -> None:
    """Rare labels, mostly label-free examples: the trained model's thresholds come from its calibration
    slice, are stored with the version, and classify applies them unless a submission names one."""
    settings = get_settings(data_dir=tmp_path, device="cpu", database_url=f"sqlite:///{tmp_path / 'x.db'}")
    rows = rare_label_rows(72)
    data = train_examples.canonical(rows)
    outcome, spec = train_job(settings=settings, batch="b", job_id="j", data=data, worker="w", sink=None,
                              params={"name": "tos", "base": str(encoder_dir), "iterations": 2, "batch_size": 8,
                                      "learning_rate": 1e-3, "holdout": 0.0, "multi_label": True})
    assert spec == "tos@1" and isinstance(outcome, dict), outcome
    thresholds = outcome["thresholds"]
    assert set(thresholds) == {"billing", "legal"} and all(0 < t < 1 for t in thresholds.values())
    assert outcome["metrics"]["calibrated_on"] > 0
    assert outcome["metrics"]["trained_on"] + outcome["metrics"]["calibrated_on"] == len(rows)
    stored = json.loads((tmp_path / "models" / "tos" / "1" / model_store.HEAD).read_text())
    assert stored["thresholds"] == [thresholds["billing"], thresholds["legal"]]

    engine = Registry(settings).get("classify", "tos@1", params={"model": "tos@1"})
    texts = [" ".join(PAY), " ".join(NEUTRAL)]
    out = engine.run(texts, ClassifyParams.of({"model": "tos@1", "engine": "fine-tuned"}))
    for result in out:
        assert isinstance(result, dict)
        assert result["labels"] == [k for k, v in result["scores"].items() if v >= thresholds[k]]
    forced = engine.run(texts, ClassifyParams.of({"model": "tos@1", "engine": "fine-tuned", "multi_label": True,
                                                      "threshold": 0.0}))
    assert all(isinstance(r, dict) and set(r["labels"]) == {"billing", "legal"} for r in forced)


def test_a_fixed_threshold_skips_calibration(tmp_path: Path, encoder_dir: Path) -> None:
    card = train(rare_label_rows(36), TrainParams(iterations=1, batch_size=8, holdout=0.0, multi_label=True,
                                                  threshold=0.3), resolve_model(str(encoder_dir)), tmp_path,
                 torch.device("cpu"), lambda *a: None)
    assert "thresholds" not in card and "calibrated_on" not in card["metrics"]
    assert card["metrics"]["trained_on"] == 36
    assert json.loads((tmp_path / "head.json").read_text())["threshold"] == 0.3


def test_end_to_end_phase_alone_learns_a_separable_task(tmp_path: Path, encoder_dir: Path) -> None:
    """No pair phase, only encoder and head trained together on the labels: the encoder's weights move
    and held-out examples of two labels with disjoint words are told apart."""
    rng = random.Random(1)
    rows = [Example(" ".join(rng.choice(PAY if i % 2 else LAW) for _ in range(8)), ("billing" if i % 2 else "legal",))
            for i in range(24)]
    stages: list[str] = []
    card = train(rows, TrainParams(iterations=0, end_to_end_epochs=4, batch_size=8, learning_rate=1e-3,
                                   holdout=0.25), resolve_model(str(encoder_dir)), tmp_path, torch.device("cpu"),
                 lambda stage, *a: stages.append(stage))
    assert "end_to_end" in stages and "pairs" not in stages
    assert card["metrics"]["micro_f1"] >= 0.8, card
    from transformers import AutoModel

    base = AutoModel.from_pretrained(str(encoder_dir)).state_dict()
    tuned = AutoModel.from_pretrained(str(tmp_path)).state_dict()
    assert any(not torch.equal(base[k], tuned[k]) for k in base)
