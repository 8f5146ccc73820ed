"""Zero-/few-shot classification with a sentence-embedding model (the offline engine).

Each label becomes one or more short hypotheses whose embeddings are averaged. A label with a
description is the normalised mean of two parts, the name's prompt(s) and the description (a
two-prompt ensemble: on LEDGAR it beat one prompt holding both, 0.55 vs 0.51 micro-F1). Few-shot
evidence is added when the user sent labelled examples (:mod:`workers.engines.fewshot`).

- Single-label, no template given (the default): each label is the mean of
  :data:`DEFAULT_TEMPLATES` filled with its name made into words (:func:`normalise_label`), and the
  document votes with its own sentence segments: each segment's softmax over the labels, averaged.
  A 256-token window of a contract or an article is close to its *topic*; a sentence is closer to
  what kind of text it is, and a vote lets the segments that say so outweigh the rest. A segment
  that contains a label's own words leans to that label (:mod:`workers.engines.label_words`), and in a
  label set of common document kinds ("contract, invoice, news, e-mail") a kind without a description
  of the user's gets a built-in one (:mod:`workers.engines.document_kinds`). On the held-out parts
  of five sets this beat the bare label names with no template (the baseline) on each (README,
  ops/eval/classify_zero_shot.py).
- Single-label with ``--template`` or with examples: the document's windows are averaged into one
  vector and scored against the labels (cosine, temperature-scaled softmax), as before.
- Multi-label: each label is judged on its own, against a *null hypothesis* (the template with no
  label): ``sigmoid(scale * (cos(doc, label) - cos(doc, null) - margin))``. A label scores above 0.5
  when the document is clearly closer to it than to the empty hypothesis, whatever the other labels
  are; this is the calibration an entailment-vs-contradiction score gives an NLI model. Its default
  template stays ``Type of document: {}.``, which the margin was set for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from docqueue.params import ClassifyParams
from workers.engines import Outcome
from workers.engines.classify_common import (
    DEFAULT_TEMPLATE,
    DEFAULT_TEMPLATES,
    classification,
    fill_template,
    normalise_label,
    start_outcomes,
)
from workers.engines.document_kinds import kind_descriptions
from workers.engines.embedding import SentenceEncoder
from workers.engines.fewshot import ExampleCache
from workers.engines.label_words import LABEL_WORD_WEIGHT, LabelWords

#: Cosine similarities of MiniLM-type models sit in a narrow range; scaling spreads the softmax.
SIMILARITY_SCALE = 20.0
#: Ordinary sentences of no particular kind or topic (written for docqueue). Their mean embedding is
#: the direction every text shares; the default removes it from the label vectors, so a label is not
#: chosen for being close to "any text" (the hub a generic label name such as "invoice" becomes).
ORDINARY_TEXT = (
    'The meeting has been moved to Thursday afternoon.',
    'Prices rose slightly over the last quarter.',
    'She walked to the station and took the early train.',
    'Please find the attached file and let me know what you think.',
    'The committee will review the proposal next month.',
    'It rained most of the weekend, so we stayed inside.',
    'The report describes the results of the survey.',
    'Our team is working on the next version of the product.',
    'He said the project would be finished by the end of the year.',
    'The city council approved the new budget on Monday.',
    'Thank you for your help with this matter.',
    'The system stores the data in a central database.',
    'Most of the participants agreed with the conclusion.',
    'The parties shall meet to discuss any changes.',
    'The company reported higher revenue than expected.',
    'I will call you back tomorrow morning.',
    'The museum is open every day except Monday.',
    'This section explains how the method works.',
    'The shipment is expected to arrive next week.',
    'They discussed the plan over dinner.',
)
#: Multi-label: how much closer than the null hypothesis a label must be to reach 0.5.
NULL_MARGIN = 0.1


#: One label's texts to embed: parts, each a group of prompts (a part's vector is its prompts' mean).
Prompts = tuple[tuple[str, ...], ...]


def ensemble_default(p: ClassifyParams) -> bool:
    """Whether a submission gets the single-label default: no template, no examples."""
    return p.template is None and not p.multi_label and not p.examples


def label_prompts(labels: Sequence[str], descriptions: Mapping[str, str], template: str | None = None,
                  *, ensemble: bool = False) -> list[Prompts]:
    """The texts embedded for each label: its name in the template (or, with ``ensemble``, in each of
    :data:`DEFAULT_TEMPLATES`, the name normalised), and its description if any (with ``ensemble``,
    in a label set of common document kinds, each kind has a built-in one:
    :mod:`workers.engines.document_kinds`)."""
    prompts: list[Prompts] = []
    kinds = kind_descriptions(labels) if ensemble else {}
    for label in labels:
        description = descriptions.get(label) or kinds.get(label)
        if ensemble:
            names = tuple(fill_template(t, normalise_label(label)) for t in DEFAULT_TEMPLATES)
        else:
            names = (fill_template(template or DEFAULT_TEMPLATE, label),)
        prompts.append((names, (description,)) if description else (names,))
    return prompts


class ZeroShotEmbeddingClassifier:
    """Resident engine for ``classify`` with a sentence-embedding model."""

    kind = "embedding"

    def __init__(self, encoder: SentenceEncoder) -> None:
        self.encoder = encoder
        self.model_id = encoder.ref.spec
        self.model_revision = encoder.revision
        self.runtime = encoder.runtime
        self.examples = ExampleCache()
        self._label_cache: dict[tuple[Prompts, ...], torch.Tensor] = {}
        self._ordinary: torch.Tensor | None = None

    def _without_ordinary(self, label_vecs: torch.Tensor) -> torch.Tensor:
        """Label vectors with the shared direction of ordinary text projected out, renormalised."""
        if self._ordinary is None:
            self._ordinary = torch.nn.functional.normalize(self.encoder.encode(list(ORDINARY_TEXT)).mean(0), dim=-1)
        v = self._ordinary
        return torch.nn.functional.normalize(label_vecs - (label_vecs @ v)[:, None] * v[None], dim=-1)

    def _prompt_vectors(self, prompts: Sequence[Prompts]) -> torch.Tensor:
        """One unit vector per label: the normalised mean of its parts, each part the normalised mean
        of its prompts' embeddings (cached)."""
        key = tuple(prompts)
        if key not in self._label_cache:
            if len(self._label_cache) > 256:
                self._label_cache.clear()
            flat = [text for parts in prompts for group in parts for text in group]
            vectors, rows, at = self.encoder.encode(flat), [], 0
            for parts in prompts:
                part_vecs = []
                for group in parts:
                    part_vecs.append(torch.nn.functional.normalize(vectors[at : at + len(group)].mean(0), dim=-1))
                    at += len(group)
                rows.append(torch.stack(part_vecs).mean(0))
            self._label_cache[key] = torch.nn.functional.normalize(torch.stack(rows), dim=-1)
        return self._label_cache[key]

    def scores(self, texts: Sequence[str], p: ClassifyParams) -> torch.Tensor:
        """(n_docs, n_labels) scores for non-empty texts: softmax rows (single-label), or independent
        per-label probabilities (multi-label)."""
        ensemble = ensemble_default(p)
        label_vecs = self._prompt_vectors(label_prompts(p.labels, p.label_descriptions, p.template, ensemble=ensemble))
        if ensemble:
            label_vecs = self._without_ordinary(label_vecs)
            words = LabelWords(p.labels)
            # each sentence segment votes with its own softmax, a segment that names a label's words
            # leaning to it; the document's score is the mean vote
            votes = []
            for segs, seg_texts in self.encoder.encode_segments_with_text(texts):
                logits = segs @ label_vecs.T + LABEL_WORD_WEIGHT * words.evidence(seg_texts)
                votes.append(torch.softmax(SIMILARITY_SCALE * logits, dim=-1).mean(0))
            return torch.stack(votes)
        doc_vecs = self.encoder.encode(texts)
        sims = doc_vecs @ label_vecs.T
        if p.examples:
            sims = sims + self.examples.get(self.encoder, p.examples).evidence(
                doc_vecs, p.labels, neighbours=not p.multi_label)
        if not p.multi_label:
            return torch.softmax(sims * SIMILARITY_SCALE, dim=-1)
        null_prompt = fill_template(p.template or DEFAULT_TEMPLATE, "").strip()
        null = doc_vecs @ self._prompt_vectors([((null_prompt,),)])[0]
        return torch.sigmoid(SIMILARITY_SCALE * (sims - null[:, None] - NULL_MARGIN))

    def run(self, texts: Sequence[str], params: ClassifyParams) -> list[Outcome]:
        p = params
        outcomes, live = start_outcomes(texts, p.engine, self.kind, self.model_id)
        if not live:
            return outcomes
        probs = self.scores([texts[i] for i in live], p)
        for row, i in zip(probs.tolist(), live, strict=True):
            outcomes[i] = classification(p.labels, row, multi_label=p.multi_label, threshold=p.threshold,
                                         engine=self.kind)
        return outcomes
