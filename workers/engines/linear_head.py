"""The classification head of a trained model (``docqueue train``): a linear layer over unit-length
embeddings, stored as JSON beside the fine-tuned encoder. It lives with the engines, which read it at
inference time; ``workers.training`` fits it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Head:
    """A linear head over unit-length embeddings; softmax (one label) or sigmoid (multi-label)."""

    labels: list[str]
    weight: torch.Tensor
    bias: torch.Tensor
    multi_label: bool
    threshold: float = 0.5
    #: multi-label: one threshold per label (in the order of ``labels``), chosen at training time on a
    #: calibration slice; None (versions trained before they existed): ``threshold`` for every label
    thresholds: list[float] | None = None

    def cutoffs(self) -> list[float]:
        """The score at which each label applies (multi-label)."""
        return list(self.thresholds) if self.thresholds is not None else [self.threshold] * len(self.labels)

    def probabilities(self, embeddings: torch.Tensor) -> torch.Tensor:
        logits = embeddings @ self.weight.T + self.bias
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

    def predict(self, embeddings: torch.Tensor) -> list[list[str]]:
        probs = self.probabilities(embeddings)
        if self.multi_label:
            cut = self.cutoffs()
            return [[self.labels[k] for k in range(len(self.labels)) if row[k] >= cut[k]] for row in probs]
        return [[self.labels[int(row.argmax())]] for row in probs]

    def to_json(self) -> dict[str, Any]:
        data = {"labels": self.labels, "multi_label": self.multi_label, "threshold": self.threshold,
                "weight": self.weight.tolist(), "bias": self.bias.tolist()}
        if self.thresholds is not None:
            data["thresholds"] = self.thresholds
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Head:
        return cls([str(x) for x in data["labels"]], torch.tensor(data["weight"], dtype=torch.float32),
                   torch.tensor(data["bias"], dtype=torch.float32), bool(data["multi_label"]),
                   float(data.get("threshold", 0.5)),
                   [float(t) for t in data["thresholds"]] if data.get("thresholds") is not None else None)
