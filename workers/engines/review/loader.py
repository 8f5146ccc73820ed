"""Which scorer a review model spec means: a fine-tuned CUAD classifier, or the encoder of the
shipped prototypes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from docqueue.errors import ModelUnavailableError
from workers.device import resolve_device
from workers.engines.embedding import resolve_model
from workers.engines.review.categories import CATEGORIES
from workers.engines.review.engine import ContractReviewer
from workers.engines.review.scorer import ClassifierScorer, PrototypeScorer

if TYPE_CHECKING:
    from workers.registry import Registry


def _config(location: str, revision: str | None) -> dict[str, object] | None:
    """The model's config.json (local folder or HF cache), or None when there is none."""
    path = Path(location) / "config.json"
    if not path.exists():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(location, "config.json", revision=revision)
        except Exception:
            return None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_cuad_classifier(location: str, revision: str | None) -> bool:
    """A sequence classifier whose labels include CUAD categories."""
    config = _config(location, revision)
    if not config:
        return False
    architectures = config.get("architectures")
    id2label = config.get("id2label")
    if not isinstance(architectures, list) or not isinstance(id2label, dict):
        return False
    return any(str(a).endswith("ForSequenceClassification") for a in architectures) and \
        any(label in CATEGORIES for label in id2label.values())


def load_review_engine(registry: Registry, spec: str, revision: str | None) -> ContractReviewer:
    ref = resolve_model(spec, revision)
    if is_cuad_classifier(ref.location, ref.revision):
        try:
            scorer = ClassifierScorer(ref.location, ref.revision, resolve_device(registry.settings.device),
                                      max_length=registry.settings.max_tokens_per_document)
        except (OSError, ValueError) as e:
            raise ModelUnavailableError(f"cannot load review classifier {spec!r}: {e}".splitlines()[0]) from e
        return ContractReviewer(scorer, spec, ref.revision, max_chars=registry.settings.analysis_max_chars)
    encoder = registry.encoder(spec, revision)
    try:
        prototypes = PrototypeScorer.load(encoder)
    except ValueError as e:
        raise ModelUnavailableError(f"review model {spec!r}: {e}; the shipped prototypes need the encoder they "
                                    f"were built with, or give a fine-tuned classifier with CUAD labels") from e
    return ContractReviewer(prototypes, spec, encoder.revision, max_chars=registry.settings.analysis_max_chars)
