"""Few-shot steering: labelled examples the user already has, used without any training run.

Each label with examples gets a prototype (the normalised mean of its examples' embeddings). A
document's evidence for such a label is how much closer it is to that prototype than to the
centroid of all examples, plus, for single-label decisions, a nearest-neighbour affinity
``exp(-beta * (1 - cos))`` to the label's closest example, which rewards near-duplicates (boiler-
plate clauses, form letters) that a prototype blurs. Labels without examples get no evidence and
are decided by their zero-shot score alone. The weights were chosen on LEDGAR dev data (see
``ops/eval/classify_ledgar.py``) among a handful of round values, not fitted per label.

Examples travel in every queue message of a submission, so their embeddings are cached by a hash
of the examples: a worker embeds one submission's examples once.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from docqueue.params import Example
from workers.engines.embedding import SentenceEncoder

PROTOTYPE_WEIGHT = 1.0
NEIGHBOUR_WEIGHT = 1.0
NEIGHBOUR_BETA = 5.0


def examples_key(examples: Sequence[Example]) -> str:
    """A stable hash of the examples (order included), for the embedding cache."""
    payload = json.dumps([[e.text, e.label] for e in examples], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ExampleSet:
    """Embedded examples: one unit vector per example, their labels, prototypes and centroid."""

    vectors: torch.Tensor  # (n_examples, dim)
    labels: tuple[str, ...]
    prototypes: dict[str, torch.Tensor]
    centroid: torch.Tensor

    @classmethod
    def build(cls, encoder: SentenceEncoder, examples: Sequence[Example]) -> ExampleSet:
        vectors = encoder.encode([e.text for e in examples])
        labels = tuple(e.label for e in examples)
        prototypes = {}
        for label in dict.fromkeys(labels):
            rows = vectors[[i for i, x in enumerate(labels) if x == label]]
            prototypes[label] = torch.nn.functional.normalize(rows.mean(0), dim=-1)
        centroid = torch.nn.functional.normalize(vectors.mean(0), dim=-1)
        return cls(vectors, labels, prototypes, centroid)

    def evidence(self, docs: torch.Tensor, labels: Sequence[str], *, neighbours: bool = True) -> torch.Tensor:
        """(n_docs, n_labels) evidence to add to the zero-shot similarities; 0 for labels without
        examples."""
        out = torch.zeros((docs.shape[0], len(labels)))
        base = docs @ self.centroid
        sims = docs @ self.vectors.T
        for j, label in enumerate(labels):
            proto = self.prototypes.get(label)
            if proto is None:
                continue
            out[:, j] = PROTOTYPE_WEIGHT * (docs @ proto - base)
            if neighbours:
                own = [i for i, x in enumerate(self.labels) if x == label]
                nearest = sims[:, own].max(dim=1).values
                out[:, j] += NEIGHBOUR_WEIGHT * torch.exp(-NEIGHBOUR_BETA * (1.0 - nearest))
        return out


class ExampleCache:
    """A few embedded example sets, least recently used dropped first."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._sets: OrderedDict[str, ExampleSet] = OrderedDict()
        self.builds = 0  # how many times examples were embedded: tests check the cache works

    def get(self, encoder: SentenceEncoder, examples: Sequence[Example]) -> ExampleSet:
        key = examples_key(examples)
        found = self._sets.get(key)
        if found is not None:
            self._sets.move_to_end(key)
            return found
        built = self._sets[key] = ExampleSet.build(encoder, examples)
        self.builds += 1
        while len(self._sets) > self.size:
            self._sets.popitem(last=False)
        return built
