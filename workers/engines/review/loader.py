"""Whether a review model spec is a fine-tuned CUAD classifier (else it is the encoder of the shipped
prototypes), read from its config.json; ``workers.loading`` builds the scorer it means."""

from __future__ import annotations

import json
from pathlib import Path

from workers.engines.review.categories import CATEGORIES


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
