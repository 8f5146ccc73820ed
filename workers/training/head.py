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


def _best_cut(p: torch.Tensor, t: torch.Tensor) -> float | None:
    """The threshold maximising F1 of the decisions ``p >= threshold`` against ``t`` (None without a
    positive). Candidates lie midway between adjacent distinct scores, so none sits on the very score
    of one example (it would flip with any change of the model); among cuts of equal F1, the middle one."""
    positives = int((t > 0).sum())
    if positives == 0 or p.numel() == 0:
        return None
    scores, order = torch.sort(p.flatten().double(), descending=True)
    tp = torch.cumsum((t.flatten()[order] > 0).double(), 0)
    taken = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    f1 = 2 * tp / (taken + positives)  # 2tp / (2tp + fp + fn), fp + fn = taken - tp + positives - tp
    boundary = torch.ones(len(scores), dtype=torch.bool)
    boundary[:-1] = scores[:-1] > scores[1:]  # a cut after k scores only where the next one is lower
    f1[~boundary] = -1.0
    tied = torch.nonzero(f1 >= f1.max() - 1e-12).flatten()
    k = int(tied[len(tied) // 2])
    below = float(scores[k + 1]) if k + 1 < len(scores) else 0.0
    return round((float(scores[k]) + below) / 2, 4)  # to the 4 decimals results show scores with


def choose_thresholds(probs: torch.Tensor, y: torch.Tensor) -> tuple[float, list[float]]:
    """(global threshold, one per label) maximising F1 on a calibration slice (examples x labels).

    The global threshold maximises micro-F1 over every (example, label) decision; a label with at
    least :data:`MIN_LABEL_POSITIVES` positives gets the threshold that maximises its own F1, the others
    the global one. An example whose scores all stay below their thresholds gets no label, which
    multi-label data allows. A slice without any positive leaves 0.5."""
    overall = _best_cut(probs, y)
    overall = 0.5 if overall is None else overall
    per_label = []
    for k in range(y.shape[1]):
        own = _best_cut(probs[:, k], y[:, k]) if int(y[:, k].sum()) >= MIN_LABEL_POSITIVES else None
        per_label.append(overall if own is None else own)
    return overall, per_label


def micro_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Micro-averaged F1 over (example, label) decisions."""
    tp = sum(len(set(g) & set(p)) for g, p in zip(gold, predicted, strict=True))
    fp = sum(len(p) for p in predicted) - tp
    fn = sum(len(g) for g in gold) - tp
    return _f1_counts(tp, fp, fn)
