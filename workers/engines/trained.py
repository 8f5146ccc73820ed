"""``classify`` with a model from the model store (``docqueue train``): its encoder, then its head.

The encoder is the fine-tuned sentence encoder, read exactly as at training time (the same
:class:`~workers.engines.embedding.SentenceEncoder`); the head is the linear layer in ``head.json``.
The model knows its labels, like any fine-tuned classifier, so a submission needs none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from docqueue.model_store import HEAD, StoredModel
from docqueue.params import ClassifyParams
from workers.engines import Outcome
from workers.engines.classify_common import classification, start_outcomes
from workers.engines.embedding import SentenceEncoder
from workers.engines.linear_head import Head


class TrainedClassifier:
    """Resident engine for a store model; ``model_id`` is ``NAME@VERSION`` (results name it)."""

    kind = "fine-tuned"

    def __init__(self, model: StoredModel, encoder: SentenceEncoder) -> None:
        self.encoder = encoder
        self.head = Head.from_json(json.loads((model.path / HEAD).read_text(encoding="utf-8")))
        self.model_id = model.spec
        # the data the model learnt from identifies it beyond its name (a store rebuilt elsewhere)
        self.model_revision: str | None = f"data-sha256:{str(model.card.get('data_sha256', ''))[:16]}"
        self.runtime = encoder.runtime

    def run(self, texts: Sequence[str], params: ClassifyParams) -> list[Outcome]:
        p = params
        outcomes, live = start_outcomes(texts, p.engine, self.kind, self.model_id)
        if not live:
            return outcomes
        probs = self.head.probabilities(self.encoder.encode([texts[i] for i in live]))
        multi = p.multi_label or self.head.multi_label
        # a submission's own --threshold wins over the ones the training chose (per label, calibrated)
        threshold = p.threshold if "threshold" in p.model_fields_set else self.head.cutoffs()
        for j, i in enumerate(live):
            outcomes[i] = classification(self.head.labels, probs[j].tolist(), multi_label=multi, threshold=threshold,
                                         engine=self.kind)
        return outcomes
