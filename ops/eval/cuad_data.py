"""CUAD data, CUAD's own span-matching metric, and the calibrator fit, shared by
``build_review_prototypes.py`` (which ships the artifact) and ``cuad.py`` (which measures it).

The metric follows CUAD's ``evaluate.py`` (Hendrycks et al., 2021): a predicted span matches a gold
span when their word sets have Jaccard >= 0.5 after dropping ``.,;:`` and lower-casing (for
Parties, a prediction that contains the gold text also matches); precision and recall are pooled
over every (contract, category) at each confidence threshold 0.99, 0.98, ... 0.01, 0.001, 0.
"""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.engines.review.categories import CATEGORIES
from workers.engines.review.engine import embed_segments
from workers.engines.review.scorer import (
    CALIBRATION_TOP_K,
    FEATURES,
    SLOPE_SCALE,
    Calibration,
    PrototypeScorer,
    SegmentInfo,
    candidate_features,
)
from workers.engines.review.segment import Segment, segment

IOU_THRESH = 0.5
#: Floor under a calibrated threshold, so a category never reports clauses it is nearly sure are not it.
MIN_THRESHOLD = 0.15
CONFIDENCES = [*np.round(np.arange(0.99, 0, -0.01), 2).tolist(), 0.001, 0.0]


@dataclass
class Contract:
    """One CUAD dev contract: its text and gold spans per category (``<omitted>`` pieces split)."""

    name: str
    text: str
    gold: dict[str, list[str]]
    answers: dict[str, str]


def load_contracts(cuad: Path) -> list[Contract]:
    out = []
    for line in (cuad / "labels.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        text = (cuad / row["txt_file"]).read_text(encoding="utf-8")
        gold = {c: [p.strip() for ctx in row["labels"][c]["contexts"] for p in ctx["text"].split("<omitted>")
                    if p.strip()] for c in CATEGORIES}
        answers = {c: str(row["labels"][c].get("answer") or "") for c in CATEGORIES}
        out.append(Contract(Path(row["txt_file"]).stem, text, gold, answers))
    return sorted(out, key=lambda c: c.name)


def training_clauses(cuad: Path, exclude: Iterable[str]) -> list[tuple[str, str]]:
    """(category, clause text) from master_clauses_dev.csv, without the contracts in ``exclude``
    (the evaluation contracts), so prototypes never saw what they are measured on."""
    csv.field_size_limit(10**9)
    excluded = set(exclude)  # contract names: file names without their extension
    out = []
    with (cuad / "master_clauses_dev.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if Path(row["Filename"]).stem in excluded:  # "X-EX-10.4-AGREEMENT.pdf" -> its stem
                continue
            for category in CATEGORIES:
                for clause in ast.literal_eval(row[category] or "[]"):
                    out += [(category, p.strip()) for p in str(clause).split("<omitted>") if p.strip()]
    return out


def descriptions(cuad: Path) -> dict[str, str]:
    with (cuad / "category_descriptions.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))[1:]
    return {r[0].split("Category: ", 1)[1].strip(): r[1].split("Description: ", 1)[-1].strip() for r in rows}


def _words(s: str) -> set[str]:
    for token in ".,;:":
        s = s.replace(token, "")
    return set(s.lower().replace("/", " ").split(" "))


def jaccard(gold: str, pred: str) -> float:
    g, p = _words(gold), _words(pred)
    return len(g & p) / len(g | p)


def matches(gold: str, pred: str, category: str) -> bool:
    return jaccard(gold, pred) >= IOU_THRESH or (category == "Parties" and gold in pred)


def counts(golds: Sequence[str], preds: Sequence[str], category: str) -> tuple[int, int, int]:
    """(tp, fp, fn) for one contract and category, as CUAD's compute_precision_recall counts them."""
    if not golds:
        return 0, len(preds), 0
    tp = sum(1 for g in golds if any(matches(g, p, category) for p in preds))
    fp = sum(1 for p in preds if not any(matches(g, p, category) for g in golds))
    return tp, fp, len(golds) - tp


Predictions = dict[tuple[str, str], list[tuple[str, float]]]  # (contract, category) -> [(text, prob)]


def pr_curve(pred: Predictions, gold: dict[tuple[str, str], list[str]], categories: Sequence[str] | None = None
             ) -> tuple[list[float], list[float]]:
    precisions, recalls = [1.0], [0.0]
    for conf in CONFIDENCES:
        tp = fp = fn = 0
        for key, golds in gold.items():
            if categories is not None and key[1] not in categories:
                continue
            preds = list(dict.fromkeys(t for t, p in pred.get(key, []) if p > conf))
            a, b, c = counts(golds, preds, key[1])
            tp, fp, fn = tp + a, fp + b, fn + c
        if tp + fp == 0:
            continue  # no prediction at this confidence: no point on the curve
        precisions.append(tp / (tp + fp))
        recalls.append(tp / (tp + fn) if tp + fn else 0.0)
    return precisions, recalls


def _smoothed(precisions: list[float]) -> list[float]:
    best = precisions[::-1]
    for i in range(1, len(best)):
        best[i] = max(best[i - 1], best[i])
    return best[::-1]


def aupr(precisions: list[float], recalls: list[float]) -> float:
    return float(np.trapezoid(_smoothed(precisions), recalls))


def precision_at_recall(precisions: list[float], recalls: list[float], target: float) -> float:
    for p, r in zip(_smoothed(precisions), recalls, strict=True):
        if r >= target:
            return p
    return 0.0


# ------------------------------------------------------------------------------------- calibration
def design(feats: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Logistic-regression inputs: shared features, a one-hot intercept and a similarity slope per category."""
    onehot = np.zeros((len(cats), len(CATEGORIES)), dtype=np.float32)
    onehot[np.arange(len(cats)), cats] = 1.0
    return np.hstack([feats, onehot, onehot * feats[:, :1] * SLOPE_SCALE])


def fit_calibration(feats: np.ndarray, cats: np.ndarray, labels: np.ndarray, c: float = 1.0) -> Calibration:
    """Logistic calibrator over candidate rows; thresholds are filled in by :func:`best_thresholds`."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=5000).fit(design(feats, cats), labels)
    coef = model.coef_[0]
    n_f, n_c = len(FEATURES), len(CATEGORIES)
    bias = coef[n_f : n_f + n_c] + model.intercept_[0]
    return Calibration(coef[:n_f].astype(np.float32), bias.astype(np.float32),
                       coef[n_f + n_c :].astype(np.float32), np.full(n_c, 0.5, dtype=np.float32))


def best_thresholds(probs: np.ndarray, cats: np.ndarray, labels: np.ndarray, positives: np.ndarray,
                    default: float = 0.5) -> np.ndarray:
    """Per category, the probability threshold with the best F1 on (out-of-fold) candidate rows;
    ``positives[c]`` is the number of gold spans of category c (recall's denominator)."""
    out = np.full(len(CATEGORIES), default, dtype=np.float32)
    for c in range(len(CATEGORIES)):
        rows = cats == c
        if positives[c] == 0 or not labels[rows].any():
            continue
        p, y = probs[rows], labels[rows]
        best_f1, best_t = -1.0, default
        for t in np.unique(np.round(p, 3)):
            chosen = p >= t
            tp = int((y & chosen).sum())
            precision = tp / max(1, int(chosen.sum()))
            recall = min(1.0, tp / positives[c])
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            if f1 > best_f1:
                best_f1, best_t = f1, float(t)
        # a category whose best F1 is poor reports only confident clauses; none reports near-zero scores
        out[c] = max(best_t, MIN_THRESHOLD if best_f1 >= 0.2 else 0.5)
    return out


# ------------------------------------------------------------------------------ embedded contracts
@dataclass
class Embedded:
    """A contract cut into candidate clauses, with their embeddings (computed once, reused per fold)."""

    contract: Contract
    segments: list[Segment]
    vectors: np.ndarray


def embed_contracts(contracts: Sequence[Contract], scorer: PrototypeScorer, cache: Path | None = None,
                    log: Callable[[str], None] = print) -> list[Embedded]:
    """Each contract's candidate segments and their embeddings; ``cache`` keeps the embeddings per
    runtime (``torch-cpu-fp32``, ``torch-cpu-bf16``, ...), so runs in two precisions sharing one
    cache folder never read each other's vectors."""
    out = []
    for i, contract in enumerate(contracts):
        segs = segment(contract.text)
        path = cache / scorer.runtime / f"{contract.name[:80]}-{len(segs)}.npy" if cache else None
        if path is not None and path.exists():
            vectors = np.load(path)
        else:
            (vectors,) = embed_segments(scorer, [(contract.text, segs)])
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, vectors)
        out.append(Embedded(contract, segs, vectors))
        log(f"  embedded {i + 1}/{len(contracts)}: {len(segs)} segments of {contract.name[:60]}")
    return out


def candidate_rows(embedded: Sequence[Embedded], scorer: PrototypeScorer
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Calibrator rows over every contract's top-k candidates per category: (features, category,
    label = matches a gold span, contract index)."""
    feats, cats, labels, owners = [], [], [], []
    for n, e in enumerate(embedded):
        infos = [SegmentInfo(s.kind, s.end - s.start) for s in e.segments]
        sim = scorer.similarities(e.vectors)
        for c, (idx, f) in enumerate(candidate_features(sim, infos, CALIBRATION_TOP_K)):
            category = CATEGORIES[c]
            golds = e.contract.gold[category]
            for j, row in zip(idx, f, strict=True):
                seg = e.segments[j]
                text = e.contract.text[seg.start : seg.end]
                feats.append(row)
                cats.append(c)
                labels.append(any(matches(g, text, category) for g in golds))
                owners.append(n)
    return np.array(feats, dtype=np.float32), np.array(cats), np.array(labels, dtype=bool), np.array(owners)


def gold_counts(contracts: Sequence[Contract]) -> np.ndarray:
    return np.array([sum(len(c.gold[cat]) for c in contracts) for cat in CATEGORIES])
