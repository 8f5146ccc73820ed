"""SetFit-style training: contrastive fine-tuning of a sentence encoder, then a linear head.

Why this and not the ``setfit`` package or ``SentenceTransformerTrainer``: both train through
``datasets``/``accelerate`` (pyarrow and friends, none of them in this venv) and pool however the saved
sentence-transformers config says; docqueue serves embeddings with its own windowed mean pooling
(:class:`workers.engines.embedding.SentenceEncoder`). Training here, on the same ``AutoModel`` with
the same mean pooling, and fitting the head on embeddings made *by the serving encoder*, means the
model that is measured on the held-out split is exactly the model that classifies later. The method is
SetFit's (Tunstall et al., 2022): pairs of examples with the same label(s) are pulled together, pairs
with different ones pushed apart (cosine-similarity loss), then a logistic-regression head.

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

#: progress(stage, done, total, info): stage is "pairs", "head" or "evaluate".
Progress = Callable[[str, int, int, dict[str, Any]], None]


@dataclass(frozen=True)
class TrainParams:
    """What ``docqueue train classify`` lets a user choose (the message's ``params``)."""

    epochs: int = 1
    iterations: int = 5  # SetFit's num_iterations: pairs per example and epoch = 2 x iterations
    batch_size: int = 16
    learning_rate: float = 2e-5
    max_tokens: int = 128  # tokens of each example the contrastive phase reads
    holdout: float = 0.2  # share of the examples kept apart for the card's metrics
    seed: int = 0
    multi_label: bool = False
    threshold: float = 0.5

    @classmethod
    def parse(cls, params: dict[str, Any]) -> TrainParams:
        """Checked values; ValueError names the first bad one."""
        fields = {f: params[f] for f in cls.__dataclass_fields__ if f in params}
        p = cls(**fields)
        checks = [(p.epochs >= 1, "epochs >= 1"), (p.iterations >= 1, "iterations >= 1"),
                  (p.batch_size >= 2, "batch_size >= 2"), (0 < p.learning_rate < 1, "0 < learning_rate < 1"),
                  (8 <= p.max_tokens <= 512, "8 <= max_tokens <= 512"), (0 <= p.holdout < 0.9, "0 <= holdout < 0.9"),
                  (0 < p.threshold < 1, "0 < threshold < 1")]
        for ok, rule in checks:
            if not ok:
                raise ValueError(f"invalid training parameter: {rule}")
        return p


def split(examples: Sequence[Example], holdout: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, held out): per label set, ``holdout`` of its examples kept apart, rounded down, so a
    label seen once is only trained on (the head must know every label)."""
    groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        groups[e.labels].append(i)
    rng = random.Random(seed)
    held: set[int] = set()
    for key in sorted(groups):
        idx = groups[key][:]
        rng.shuffle(idx)
        held.update(idx[: int(len(idx) * holdout)])
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


def contrastive(base: ModelRef, out: Path, train: Sequence[Example], p: TrainParams, device: torch.device,
                progress: Progress) -> None:
    """Fine-tune the encoder on pairs; save it (model and tokenizer) to ``out``."""
    tokenizer = AutoTokenizer.from_pretrained(base.location, revision=base.revision)
    model = AutoModel.from_pretrained(base.location, revision=base.revision).to(device)
    model.train()
    rng = random.Random(p.seed)
    torch.manual_seed(p.seed)
    steps_per_epoch = math.ceil(2 * p.iterations * len(train) / p.batch_size)
    total = max(1, steps_per_epoch * p.epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.learning_rate)
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
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
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def fit_head(x: torch.Tensor, examples: Sequence[Example], labels: list[str], multi_label: bool,
             threshold: float, l2: float = 1e-4) -> Head:
    """L2-regularised logistic regression (SetFit's default head), fitted with L-BFGS."""
    index = {label: k for k, label in enumerate(labels)}
    w = torch.zeros((len(labels), x.shape[1]), requires_grad=True)
    b = torch.zeros(len(labels), requires_grad=True)
    if multi_label:
        y = torch.zeros((len(examples), len(labels)))
        for i, e in enumerate(examples):
            for label in e.labels:
                y[i, index[label]] = 1.0
    else:
        target = torch.tensor([index[e.labels[0]] for e in examples])
    optimizer = torch.optim.LBFGS([w, b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ w.T + b
        if multi_label:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        else:
            loss = torch.nn.functional.cross_entropy(logits, target)
        loss = loss + l2 * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return Head(labels, w.detach(), b.detach(), multi_label, threshold)


def micro_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Micro-averaged F1 over (example, label) decisions."""
    tp = sum(len(set(g) & set(p)) for g, p in zip(gold, predicted, strict=True))
    fp = sum(len(p) for p in predicted) - tp
    fn = sum(len(g) for g in gold) - tp
    return 2 * tp / max(1, 2 * tp + fp + fn)


def train(examples: Sequence[Example], params: TrainParams, base: ModelRef, out: Path, device: torch.device,
          progress: Progress) -> dict[str, Any]:
    """Train into ``out`` (encoder + ``head.json``); returns the card's training fields and metrics."""
    began = time.monotonic()
    train_part, held = split(examples, params.holdout, params.seed)
    labels = sorted({label for e in examples for label in e.labels})
    contrastive(base, out, train_part, params, device, progress)
    progress("head", 0, 1, {})
    encoder = SentenceEncoder(ModelRef(str(out), str(out), None), device)
    head = fit_head(encoder.encode([e.text for e in train_part]), train_part, labels, params.multi_label,
                    params.threshold)
    (out / "head.json").write_text(json.dumps(head.to_json()), encoding="utf-8")
    metrics: dict[str, Any] = {"held_out": len(held), "trained_on": len(train_part)}
    if held:
        progress("evaluate", 0, 1, {})
        predicted = head.predict(encoder.encode([e.text for e in held]))
        metrics["micro_f1"] = round(micro_f1([e.labels for e in held], predicted), 4)
        if not params.multi_label:
            metrics["accuracy"] = round(sum(p == list(e.labels) for p, e in zip(predicted, held, strict=True))
                                        / len(held), 4)
    return {"labels": labels, "multi_label": params.multi_label, "metrics": metrics,
            "seconds": round(time.monotonic() - began, 1)}
