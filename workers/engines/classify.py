"""Zero-shot classification with a sentence-embedding model.

Each label becomes a short natural-language hypothesis (its description when the user gave one);
a document's score for a label is the cosine similarity of the two embeddings, turned into a
distribution with a temperature-scaled softmax so scores are comparable across documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from docqueue.errors import DocumentError
from workers.engines import Outcome
from workers.engines.embedding import SentenceEncoder

#: Cosine similarities of MiniLM-type models sit in a narrow range; scaling spreads the softmax.
SIMILARITY_SCALE = 20.0


def label_prompts(labels: Sequence[str], descriptions: Mapping[str, str]) -> list[str]:
    """The text embedded for each label."""
    prompts = []
    for label in labels:
        description = descriptions.get(label)
        prompts.append(f"{label}: {description}" if description else f"Type of document: {label}.")
    return prompts


def parse_params(params: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
    labels = params.get("labels")
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        raise DocumentError("invalid_params", "classify needs 'labels': a list of at least two label names")
    descriptions = params.get("descriptions") or {}
    if not isinstance(descriptions, dict):
        raise DocumentError("invalid_params", "'descriptions' must map label -> description")
    return list(labels), {str(k): str(v) for k, v in descriptions.items()}


class ZeroShotEmbeddingClassifier:
    """Resident engine for the ``classify`` task."""

    def __init__(self, encoder: SentenceEncoder) -> None:
        self.encoder = encoder
        self.model_id = encoder.ref.spec
        self.model_revision = encoder.revision
        self._label_cache: dict[tuple[str, ...], torch.Tensor] = {}

    def _label_vectors(self, prompts: list[str]) -> torch.Tensor:
        key = tuple(prompts)
        if key not in self._label_cache:
            if len(self._label_cache) > 256:
                self._label_cache.clear()
            self._label_cache[key] = self.encoder.encode(prompts)
        return self._label_cache[key]

    def run(self, texts: Sequence[str], params: Mapping[str, Any]) -> list[Outcome]:
        try:
            labels, descriptions = parse_params(params)
        except DocumentError as e:
            return [e for _ in texts]
        outcomes: list[Outcome] = [
            DocumentError("empty_document", "document has no text to classify") for _ in texts
        ]
        live = [i for i, t in enumerate(texts) if t.strip()]
        if not live:
            return outcomes
        label_vecs = self._label_vectors(label_prompts(labels, descriptions))
        doc_vecs = self.encoder.encode([texts[i] for i in live])
        probs = torch.softmax(doc_vecs @ label_vecs.T * SIMILARITY_SCALE, dim=-1)
        for row, i in zip(probs.tolist(), live, strict=False):
            scores = {label: round(p, 4) for label, p in zip(labels, row, strict=False)}
            top = max(scores, key=lambda k: scores[k])
            outcomes[i] = {"label": top, "scores": scores}
        return outcomes
