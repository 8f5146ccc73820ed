"""Which classify engine a model gets, decided from the model's own ``config.json``.

A sentence-embedding model (no classification head) runs the embedding engine and shares the
process's encoder; a classification head whose labels are entailment/contradiction runs the NLI
engine; any other classification head is a fine-tuned classifier with its own labels. A submission
may still *ask* for an engine (``--engine``): the engine refuses, per document, a request it cannot
honour (``engine_mismatch``), so a user never gets a different engine than the one named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers.device import resolve_device
from workers.engines import TaskEngine
from workers.engines.classify import ZeroShotEmbeddingClassifier
from workers.engines.embedding import resolve_model
from workers.engines.nli import NLIZeroShotClassifier
from workers.engines.sequence_classifier import FineTunedClassifier, SequenceClassifierModel, classifier_kind

if TYPE_CHECKING:
    from workers.registry import Registry

#: Sequence classifiers read up to this many tokens per window (their own limit permitting).
CLASSIFIER_MAX_TOKENS = 512


def load_classify_engine(registry: Registry, spec: str, revision: str | None) -> TaskEngine:
    """Build the classify engine for a model spec; raises ModelUnavailableError with one line that
    says how to get the model when it is not on this machine."""
    settings = registry.settings
    ref = resolve_model(spec, revision)
    kind = classifier_kind(ref)
    if kind == "embedding":
        return ZeroShotEmbeddingClassifier(registry.encoder(spec, revision))
    model = SequenceClassifierModel(ref, resolve_device(settings.device), max_length=CLASSIFIER_MAX_TOKENS,
                                    batch_tokens=settings.batch_max_tokens)
    registry.loads += 1
    return NLIZeroShotClassifier(model) if kind == "nli" else FineTunedClassifier(model)
