"""The head of a trained classifier: fitting it on embeddings, and the multi-label decision rule.

Multi-label data such as UNFAIR-ToS is mostly negatives: each label is on a few percent of the
examples (and most examples carry none). A logistic head fitted on such data is well ranked but its
sigmoids for a rare label rarely reach 0.5, so a fixed 0.5 threshold predicts no label at all. The
threshold is therefore chosen on examples the model was not trained on (a calibration slice carved
from the training examples, :func:`choose_thresholds`) and stored with the head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from docqueue.train_examples import Example

#: A label gets a threshold of its own only with at least this many positives in the calibration slice;
#: with fewer, one F1-optimal cut-off would follow a single example, so it shares the global threshold.
MIN_LABEL_POSITIVES = 4
#: Candidate thresholds are bounded: below 0.05 a label fires on noise, above 0.95 it hardly ever can.
THRESHOLD_RANGE = (0.05, 0.95)


def targets(examples: Sequence[Example], labels: Sequence[str], multi_label: bool) -> torch.Tensor:
    """Multi-label: a 0/1 matrix (examples x labels); single-label: each example's label index."""
    index = {label: k for k, label in enumerate(labels)}
    if not multi_label:
        return torch.tensor([index[e.labels[0]] for e in examples])
    y = torch.zeros((len(examples), len(labels)))
    for i, e in enumerate(examples):
        for label in e.labels:
            y[i, index[label]] = 1.0
    return y


def loss(logits: torch.Tensor, y: torch.Tensor, multi_label: bool) -> torch.Tensor:
    if multi_label:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    return torch.nn.functional.cross_entropy(logits, y)


def fit_linear(x: torch.Tensor, y: torch.Tensor, n_labels: int, multi_label: bool,
               l2: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of an L2-regularised logistic regression (SetFit's default head), fitted with L-BFGS."""
    w = torch.zeros((n_labels, x.shape[1]), requires_grad=True)
    b = torch.zeros(n_labels, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss(x @ w.T + b, y, multi_label) + l2 * (w * w).sum()
        value.backward()
        return value

    optimizer.step(closure)
    return w.detach(), b.detach()


def _f1_counts(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / max(1, 2 * tp + fp + fn)


def choose_thresholds(probs: torch.Tensor, y: torch.Tensor) -> tuple[float, list[float]]:
    """(global threshold, one per label) maximising F1 on a calibration slice.

    The global threshold maximises micro-F1 over every (example, label) decision; a label with at
    least :data:`MIN_LABEL_POSITIVES` positives gets the threshold that maximises its own F1, the others
    the global one. Among cut-offs of equal F1 the midpoint of the tied range is taken (a threshold on
    the very score of one example would flip with any change of the model). An example whose scores all
    stay below their thresholds gets no label, which multi-label data allows."""
    lo, hi = THRESHOLD_RANGE
    grid = [lo + (hi - lo) * k / 90 for k in range(91)]

    def best(p: torch.Tensor, t: torch.Tensor) -> float:
        scores = []
        for g in grid:
            pred = p >= g
            tp = int((pred & (t > 0)).sum())
            scores.append(_f1_counts(tp, int(pred.sum()) - tp, int((t > 0).sum()) - tp))
        top = max(scores)
        tied = [g for g, s in zip(grid, scores, strict=True) if s >= top - 1e-12]
        return round((tied[0] + tied[-1]) / 2, 4)

    overall = best(probs.flatten(), y.flatten()) if y.sum() > 0 else 0.5
    per_label = [best(probs[:, k], y[:, k]) if int(y[:, k].sum()) >= MIN_LABEL_POSITIVES else overall
                 for k in range(y.shape[1])]
    return overall, per_label


def micro_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Micro-averaged F1 over (example, label) decisions."""
    tp = sum(len(set(g) & set(p)) for g, p in zip(gold, predicted, strict=True))
    fp = sum(len(p) for p in predicted) - tp
    fn = sum(len(g) for g in gold) - tp
    return _f1_counts(tp, fp, fn)
