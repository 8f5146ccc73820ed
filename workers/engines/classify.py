"""Zero-/few-shot classification with a sentence-embedding model (the offline engine).

Each label becomes a short hypothesis: the template filled with the label (``Type of document:
{}.`` unless the user gives another). A label with a description is the normalised mean of two
embeddings, the templated name and the description (a two-prompt ensemble: on LEDGAR it beat one
prompt holding both, 0.55 vs 0.51 micro-F1). A document's score for a label is the cosine similarity
of the two embeddings, plus few-shot evidence when the user sent labelled examples
(:mod:`workers.engines.fewshot`).

- Single-label: a temperature-scaled softmax over the labels, so scores are comparable across
  documents and sum to one.
- Multi-label: each label is judged on its own, against a *null hypothesis* (the template with no
  label): ``sigmoid(scale * (cos(doc, label) - cos(doc, null) - margin))``. A label scores above 0.5
  when the document is clearly closer to it than to the empty hypothesis, whatever the other labels
  are; this is the calibration an entailment-vs-contradiction score gives an NLI model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from docqueue.errors import DocumentError
from docqueue.settings import DEFAULT_CLASSIFY_MAX_LABELS
from workers.engines import Outcome
from workers.engines.classify_common import (
    DEFAULT_TEMPLATE,
    ClassifyParams,
    check_engine,
    classification,
    empty_outcomes,
    fill_template,
    parse_params,
)
from workers.engines.embedding import SentenceEncoder
from workers.engines.fewshot import ExampleCache

#: Cosine similarities of MiniLM-type models sit in a narrow range; scaling spreads the softmax.
SIMILARITY_SCALE = 20.0
#: Multi-label: how much closer than the null hypothesis a label must be to reach 0.5.
NULL_MARGIN = 0.1


def label_prompts(labels: Sequence[str], descriptions: Mapping[str, str],
                  template: str | None = None) -> list[tuple[str, ...]]:
    """The texts embedded for each label: its templated name, and its description if any."""
    tpl = template or DEFAULT_TEMPLATE
    prompts: list[tuple[str, ...]] = []
    for label in labels:
        description = descriptions.get(label)
        name = fill_template(tpl, label)
        prompts.append((name, description) if description else (name,))
    return prompts


class ZeroShotEmbeddingClassifier:
    """Resident engine for ``classify`` with a sentence-embedding model."""

    kind = "embedding"

    def __init__(self, encoder: SentenceEncoder, max_examples: int = 1000,
                 max_labels: int = DEFAULT_CLASSIFY_MAX_LABELS) -> None:
        self.encoder = encoder
        self.model_id = encoder.ref.spec
        self.model_revision = encoder.revision
        self.max_examples = max_examples
        self.max_labels = max_labels
        self.examples = ExampleCache()
        self._label_cache: dict[tuple[tuple[str, ...], ...], torch.Tensor] = {}

    def _prompt_vectors(self, prompts: Sequence[tuple[str, ...]]) -> torch.Tensor:
        """One unit vector per label: the normalised mean of its prompts' embeddings (cached)."""
        key = tuple(prompts)
        if key not in self._label_cache:
            if len(self._label_cache) > 256:
                self._label_cache.clear()
            flat = [text for group in prompts for text in group]
            vectors, rows, at = self.encoder.encode(flat), [], 0
            for group in prompts:
                rows.append(vectors[at : at + len(group)].mean(0))
                at += len(group)
            self._label_cache[key] = torch.nn.functional.normalize(torch.stack(rows), dim=-1)
        return self._label_cache[key]

    def scores(self, doc_vecs: torch.Tensor, p: ClassifyParams) -> torch.Tensor:
        """(n_docs, n_labels) scores for embedded documents: softmax rows, or independent
        per-label probabilities when multi-label."""
        label_vecs = self._prompt_vectors(label_prompts(p.labels, p.descriptions, p.template))
        sims = doc_vecs @ label_vecs.T
        if p.examples:
            sims = sims + self.examples.get(self.encoder, p.examples).evidence(
                doc_vecs, p.labels, neighbours=not p.multi_label)
        if not p.multi_label:
            return torch.softmax(sims * SIMILARITY_SCALE, dim=-1)
        null_prompt = fill_template(p.template or DEFAULT_TEMPLATE, "").strip()
        null = doc_vecs @ self._prompt_vectors([(null_prompt,)])[0]
        return torch.sigmoid(SIMILARITY_SCALE * (sims - null[:, None] - NULL_MARGIN))

    def run(self, texts: Sequence[str], params: Mapping[str, Any]) -> list[Outcome]:
        try:
            p = parse_params(params, max_examples=self.max_examples, max_labels=self.max_labels)
            check_engine(p.engine, self.kind, self.model_id)
        except DocumentError as e:
            return [e for _ in texts]
        outcomes, live = empty_outcomes(texts)
        if not live:
            return outcomes
        probs = self.scores(self.encoder.encode([texts[i] for i in live]), p)
        for row, i in zip(probs.tolist(), live, strict=True):
            outcomes[i] = classification(p.labels, row, multi_label=p.multi_label, threshold=p.threshold,
                                         engine=self.kind)
        return outcomes
