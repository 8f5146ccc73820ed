"""Which classify engine a model needs, from its ``config.json`` alone (plain JSON, no torch).

Shared by the worker (choosing the engine to load) and ``docqueue models list`` (saying which engine
will run), so both always agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def nli_label_ids(id2label: Mapping[Any, Any] | None) -> tuple[int, int] | None:
    """(entailment id, contradiction id) of an NLI head, else None.

    Three-way MNLI models have entailment/neutral/contradiction; two-way zero-shot models have
    entailment/not_entailment. Neutral is ignored, as the transformers zero-shot pipeline does.
    """
    names = {int(i): str(n).lower().replace("-", "_").replace(" ", "_") for i, n in (id2label or {}).items()}
    entail = [i for i, n in names.items() if n.startswith("entail")]
    contra = [i for i, n in names.items() if n.startswith("contradict") or n in ("not_entailment", "non_entailment")]
    if len(entail) == 1 and len(contra) == 1:
        return entail[0], contra[0]
    return None


def classify_engine_for(config: Mapping[str, Any]) -> str:
    """``nli`` for a classification head with entailment labels, ``fine-tuned`` for any other
    classification head, ``embedding`` for a bare encoder (a sentence-embedding model)."""
    architectures = config.get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return "embedding"
    return "nli" if nli_label_ids(config.get("id2label")) else "fine-tuned"
