"""SetFit-style training: contrastive fine-tuning of a sentence encoder on pairs (2 iterations by default,
0 skips it), a linear head, then encoder and head trained together on the labels (SetFit's end-to-end
second phase). Both phases by default: on LEDGAR the pair phase before the end-to-end one scored a
little higher than the end-to-end phase alone, for about 2.5 times its CPU time (docs/tasks/train.md).
Each label's name is one more training example of it by default (:func:`train` says why).

Why this and not the ``setfit`` package or ``SentenceTransformerTrainer``: both train through
``datasets``/``accelerate`` (pyarrow and friends, none of them in this venv) and pool however the saved
sentence-transformers config says; docqueue serves embeddings with its own windowed mean pooling
(:class:`workers.engines.embedding.SentenceEncoder`). Training here, on the same ``AutoModel`` with
the same mean pooling, and fitting the head on embeddings made *by the serving encoder*, means the
model that is measured on the held-out split is exactly the model that classifies later. The method is
SetFit's (Tunstall et al., 2022): pairs of examples with the same label(s) are pulled together, pairs
with different ones pushed apart (cosine-similarity loss), then a logistic-regression head, which the
end-to-end phase starts from.

Pure: examples and parameters in, a model folder and its metrics out; progress goes to a callback.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer

from docqueue.train_examples import Example
from workers.engines.embedding import ModelRef, SentenceEncoder
from workers.engines.linear_head import Head
from workers.training.head import choose_thresholds, fit_linear, loss, micro_f1, targets

#: progress(stage, done, total, info): stage is "pairs", "head", "end_to_end" or "evaluate".
Progress = Callable[[str, int, int, dict[str, Any]], None]


#: Multi-label: share of each label set's training examples kept out of training to choose thresholds on.
CALIBRATION_SHARE = 0.25
#: Learning rate of the head in the end-to-end phase (SetFit's default ``head_learning_rate``); the
#: encoder's is ``learning_rate``.
HEAD_LEARNING_RATE = 1e-2


@dataclass(frozen=True)
class TrainParams:
    """What ``docqueue train classify`` lets a user choose (the message's ``params``)."""

    epochs: int = 1
    iterations: int = 2  # SetFit's num_iterations: pairs per example and epoch = 2 x iterations (0: no pairs)
    batch_size: int = 16
    learning_rate: float = 5e-5
    max_tokens: int = 128  # tokens of each example the contrastive phase reads
    holdout: float = 0.2  # share of the examples kept apart for the card's metrics
    seed: int = 0
    multi_label: bool = False
    threshold: float | None = None  # multi-label: None = per-label thresholds chosen on a calibration slice
    end_to_end_epochs: int = 3  # SetFit's second phase: encoder and head trained together on the labels
    label_names: bool = True  # each label's name is also one training example of it (see train())
    labels: tuple[str, ...] = ()  # labels the model knows besides the examples' (learned from their names alone)

    @classmethod
    def parse(cls, params: dict[str, Any]) -> TrainParams:
        """Checked values; ValueError names the first bad one."""
        fields = {f: params[f] for f in cls.__dataclass_fields__ if f in params}
        if "labels" in fields:
            declared = fields["labels"]
            if not isinstance(declared, (list, tuple)) or not all(isinstance(x, str) and x.strip() for x in declared):
                raise ValueError("invalid training parameter: labels must be a list of non-empty strings")
            fields["labels"] = tuple(dict.fromkeys(x.strip() for x in declared))
        p = cls(**fields)
        checks = [(p.epochs >= 1, "epochs >= 1"), (p.iterations >= 0, "iterations >= 0"),
                  (p.end_to_end_epochs >= 0, "end_to_end_epochs >= 0"),
                  (p.batch_size >= 2, "batch_size >= 2"), (0 < p.learning_rate < 1, "0 < learning_rate < 1"),
                  (8 <= p.max_tokens <= 512, "8 <= max_tokens <= 512"), (0 <= p.holdout < 0.9, "0 <= holdout < 0.9"),
                  (p.threshold is None or 0 < p.threshold < 1, "0 < threshold < 1"),
                  (p.label_names or not p.labels, "labels without examples need label_names (their names are "
                                                  "all the model learns them from)")]
        for ok, rule in checks:
            if not ok:
                raise ValueError(f"invalid training parameter: {rule}")
        return p


def split(examples: Sequence[Example], holdout: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, held out): per label set, ``holdout`` of its examples kept apart, rounded down, so a
    label seen once is only trained on (the head must know every label)."""
    return _keep_apart(examples, seed, lambda n: int(n * holdout))


def _keep_apart(examples: Sequence[Example], seed: int,
                count: Callable[[int], int]) -> tuple[list[Example], list[Example]]:
    """(kept, apart): per label set of ``n`` examples, ``count(n)`` of them drawn at random (seeded,
    label sets in a fixed order, so a split is the same on every run) and kept apart."""
    groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        groups[e.labels].append(i)
    rng = random.Random(seed)
    held: set[int] = set()
    for key in sorted(groups):
        idx = groups[key][:]
        rng.shuffle(idx)
        held.update(idx[: count(len(idx))])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def make_pairs(examples: Sequence[Example], iterations: int, rng: random.Random) -> list[tuple[int, int, float]]:
    """SetFit's pair sampling: per iteration and example, one positive (same label set, where another
    example has it) and one negative pair."""
    by_key: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        by_key[e.labels].append(i)
    pairs = []
    for _ in range(iterations):
        for i, e in enumerate(examples):
            same = by_key[e.labels]
            if len(same) > 1:
                j = rng.choice(same)
                while j == i:
                    j = rng.choice(same)
                pairs.append((i, j, 1.0))
            if len(by_key) > 1:
                j = rng.randrange(len(examples))
                while examples[j].labels == e.labels:
                    j = rng.randrange(len(examples))
                pairs.append((i, j, 0.0))
    rng.shuffle(pairs)
    return pairs


def _pooled(model: torch.nn.Module, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def _schedule(optimizer: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first tenth of the steps, then linear decay to 0."""
    warmup = max(1, total // 10)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))


def contrastive(model: torch.nn.Module, tokenizer: Any, train: Sequence[Example], p: TrainParams,
                device: torch.device, progress: Progress) -> None:
    """SetFit's first phase: fine-tune the encoder on pairs (cosine similarity towards 1 or 0)."""
    model.train()
    rng = random.Random(p.seed)
    torch.manual_seed(p.seed)
    steps_per_epoch = math.ceil(2 * p.iterations * len(train) / p.batch_size)
    total = max(1, steps_per_epoch * p.epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.learning_rate)
    scheduler = _schedule(optimizer, total)
    texts = [e.text for e in train]
    step, last = 0, time.monotonic()
    for _epoch in range(p.epochs):
        pairs = make_pairs(train, p.iterations, rng)
        for start in range(0, len(pairs), p.batch_size):
            batch = pairs[start:start + p.batch_size]
            enc = tokenizer([texts[i] for i, _, _ in batch] + [texts[j] for _, j, _ in batch], padding=True,
                            truncation=True, max_length=p.max_tokens, return_tensors="pt")
            emb = _pooled(model, {k: v.to(device) for k, v in enc.items()})
            left, right = emb[: len(batch)], emb[len(batch):]
            target = torch.tensor([y for _, _, y in batch], device=device)
            loss = torch.nn.functional.mse_loss(torch.cosine_similarity(left, right), target)
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if step == 1 or time.monotonic() - last >= 2 or step == total:  # the first step: "it started"
                progress("pairs", step, total, {"loss": round(float(loss.detach()), 4)})
                last = time.monotonic()
    model.eval()


def end_to_end(model: torch.nn.Module, tokenizer: Any, train: Sequence[Example], labels: list[str],
               head: tuple[torch.Tensor, torch.Tensor], p: TrainParams, device: torch.device,
               progress: Progress) -> tuple[torch.Tensor, torch.Tensor]:
    """SetFit's second phase: encoder and head trained together on the labels (cross-entropy, or
    binary cross-entropy for multi-label), the head starting from the logistic fit. Each example is one
    forward pass, where a pair costs two and says only "same" or "different": with many labels and few
    examples each, this is what teaches the encoder most per step. Pooling as at serving time (mean,
    unit length), so the head sees embeddings of the kind it will be given."""
    model.train()
    rng = random.Random(p.seed + 1)
    torch.manual_seed(p.seed + 1)
    w = head[0].clone().to(device).requires_grad_(True)
    b = head[1].clone().to(device).requires_grad_(True)
    y_all = targets(train, labels, p.multi_label).to(device)
    total = max(1, math.ceil(len(train) / p.batch_size) * p.end_to_end_epochs)
    optimizer = torch.optim.AdamW([{"params": list(model.parameters()), "lr": p.learning_rate},
                                   {"params": [w, b], "lr": HEAD_LEARNING_RATE, "weight_decay": 0.0}])
    scheduler = _schedule(optimizer, total)
    order = list(range(len(train)))
    step, last = 0, time.monotonic()
    for _epoch in range(p.end_to_end_epochs):
        rng.shuffle(order)
        for start in range(0, len(order), p.batch_size):
            idx = order[start:start + p.batch_size]
            enc = tokenizer([train[i].text for i in idx], padding=True, truncation=True, max_length=p.max_tokens,
                            return_tensors="pt")
            emb = torch.nn.functional.normalize(_pooled(model, {k: v.to(device) for k, v in enc.items()}), dim=-1)
            value = loss(emb @ w.T + b, y_all[idx], p.multi_label)
            value.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if step == 1 or time.monotonic() - last >= 2 or step == total:
                progress("end_to_end", step, total, {"loss": round(float(value.detach()), 4)})
                last = time.monotonic()
    model.eval()
    return w.detach().cpu(), b.detach().cpu()


def carve(examples: Sequence[Example], share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(fit, calibration): like :func:`split`, but every label set of two or more examples gives at least
    one to the calibration slice (rounding down would leave a rare label without any there)."""
    return _keep_apart(examples, seed, lambda n: max(1, round(n * share)) if n >= 2 else 0)


def train(examples: Sequence[Example], params: TrainParams, base: ModelRef, out: Path, device: torch.device,
          progress: Progress) -> dict[str, Any]:
    """Train into ``out`` (encoder + ``head.json``); returns the card's training fields and metrics.

    Multi-label without a fixed ``threshold``: :data:`CALIBRATION_SHARE` of the training part is kept
    out of both phases, and the thresholds are chosen on it (:func:`~workers.training.head.choose_thresholds`).

    With ``label_names`` each label's name joins the training examples as one example of that label
    alone (in both phases and the head's fit, never in the held-out or calibration parts): a user's
    data has a long tail of labels with one or two examples (27 of LEDGAR's 93 have one), which get no
    positive pair and a head fitted on one point; their names are a second example the encoder already
    reads well (zero-shot classification is the name alone). A label declared in ``labels`` with no
    example is learned from its name alone."""
    began = time.monotonic()
    train_part, held = split(examples, params.holdout, params.seed)
    labels = sorted({label for e in examples for label in e.labels} | set(params.labels))
    calibrate = params.multi_label and params.threshold is None
    fit, calibration = carve(train_part, CALIBRATION_SHARE, params.seed) if calibrate else (list(train_part), [])
    trained_on = len(fit)
    if params.label_names:
        fit += [Example(label, (label,)) for label in labels]
    tokenizer = AutoTokenizer.from_pretrained(base.location, revision=base.revision)
    model = AutoModel.from_pretrained(base.location, revision=base.revision).to(device)
    if params.iterations:
        contrastive(model, tokenizer, fit, params, device, progress)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    progress("head", 0, 1, {})
    encoder = SentenceEncoder(ModelRef(str(out), str(out), None), device)
    w, b = fit_linear(encoder.encode([e.text for e in fit]), targets(fit, labels, params.multi_label), len(labels),
                      params.multi_label)
    if params.end_to_end_epochs:
        w, b = end_to_end(model, tokenizer, fit, labels, (w, b), params, device, progress)
        model.save_pretrained(out)
        encoder = SentenceEncoder(ModelRef(str(out), str(out), None), device)
    head = Head(labels, w, b, params.multi_label, 0.5 if params.threshold is None else params.threshold)
    if calibration:
        probs = head.probabilities(encoder.encode([e.text for e in calibration]))
        head.threshold, head.thresholds = choose_thresholds(probs, targets(calibration, labels, True))
    (out / "head.json").write_text(json.dumps(head.to_json()), encoding="utf-8")
    metrics: dict[str, Any] = {"held_out": len(held), "trained_on": trained_on}
    if params.label_names:
        metrics["label_name_examples"] = len(labels)
    if calibration:
        metrics["calibrated_on"] = len(calibration)
    if held:
        progress("evaluate", 0, 1, {})
        predicted = head.predict(encoder.encode([e.text for e in held]))
        metrics["micro_f1"] = round(micro_f1([e.labels for e in held], predicted), 4)
        if not params.multi_label:
            metrics["accuracy"] = round(sum(p == list(e.labels) for p, e in zip(predicted, held, strict=True))
                                        / len(held), 4)
    out_fields: dict[str, Any] = {"labels": labels, "multi_label": params.multi_label, "metrics": metrics,
                                  "seconds": round(time.monotonic() - began, 1)}
    if head.thresholds is not None:
        out_fields["thresholds"] = dict(zip(labels, head.thresholds, strict=True))
    return out_fields
