"""Zero-shot classification with an NLI model (entailment of "This example is {label}.").

Each (document, label) pair is one premise/hypothesis input. Scores follow the transformers
zero-shot pipeline, so figures published for these models carry over:

- single-label: a softmax of the entailment logits across the labels;
- multi-label: for each label on its own, entailment vs contradiction (or not_entailment) — an
  independent probability, not a share of one.

A long document is cut into premise windows (up to ``max_windows``); for each label the window that
supports it most (largest entailment-minus-contradiction margin) speaks for the document, since a
label usually rests on one passage. The cost is documents x windows x labels forward passes, so
NLI suits tens of labels; the embedding engine handles hundreds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from docqueue.errors import DocumentError
from docqueue.params import ClassifyParams
from workers.engines import Outcome
from workers.engines.classify_common import (
    DEFAULT_NLI_TEMPLATE,
    check_engine,
    classification,
    empty_outcomes,
    fill_template,
)
from workers.engines.sequence_classifier import SequenceClassifierModel, nli_label_ids


def hypotheses(labels: Sequence[str], descriptions: Mapping[str, str], template: str | None) -> list[str]:
    """One hypothesis per label; a description, when given, follows the templated label."""
    tpl = template or DEFAULT_NLI_TEMPLATE
    out = []
    for label in labels:
        text = fill_template(tpl, label)
        description = descriptions.get(label)
        out.append(f"{text} {description}" if description else text)
    return out


class NLIZeroShotClassifier:
    """Resident engine for ``classify`` with an NLI model."""

    kind = "nli"

    def __init__(self, model: SequenceClassifierModel) -> None:
        ids = nli_label_ids(model.config)
        if ids is None:
            raise ValueError(f"model {model.ref.spec!r} has no entailment/contradiction labels")
        self.model = model
        self.entail, self.contra = ids
        self.model_id = model.ref.spec
        self.model_revision = model.revision
        self.runtime = model.runtime

    def run(self, texts: Sequence[str], params: ClassifyParams) -> list[Outcome]:
        p = params
        try:
            check_engine(p.engine, self.kind, self.model_id)
            if p.examples:
                raise DocumentError("invalid_params", "few-shot examples steer the embedding engine only; "
                                    "leave --examples out with an NLI model")
        except DocumentError as e:
            return [e for _ in texts]
        outcomes, live = empty_outcomes(texts)
        if not live:
            return outcomes
        hyps = hypotheses(p.labels, p.label_descriptions, p.template)
        n_labels = len(hyps)
        premises = [texts[i] for i in live for _ in hyps]
        windows, owners = self.model.encode(premises, hyps * len(live))
        logits = self.model.logits(windows)
        owner_index = torch.tensor(owners)
        for j, i in enumerate(live):
            best = torch.empty((n_labels, 2))  # (entailment, contradiction) logits per label
            for k in range(n_labels):
                rows = logits[owner_index == j * n_labels + k]
                pick = rows[(rows[:, self.entail] - rows[:, self.contra]).argmax()]
                best[k] = torch.stack((pick[self.entail], pick[self.contra]))
            # multi-label: entailment vs contradiction per label; single: entailment across labels
            scores = torch.softmax(best, dim=-1)[:, 0] if p.multi_label else torch.softmax(best[:, 0], dim=0)
            outcomes[i] = classification(p.labels, scores.tolist(), multi_label=p.multi_label,
                                         threshold=p.threshold, engine=self.kind)
        return outcomes
