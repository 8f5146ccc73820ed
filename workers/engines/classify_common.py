"""What every classify engine shares: templates, label names and the shape of a result.

The params arrive already validated (``docqueue.params.ClassifyParams``, checked by the worker's
pipeline before any engine runs). All engines answer ``{"label", "labels", "scores", "engine"}`` so
scripts need not care which engine ran.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from docqueue.errors import DocumentError
from workers.engines.windows import has_text

#: Hypothesis for a label in multi-label scoring when the user gives no template (embedding engine);
#: its null (the template without a label) is what each label is measured against.
DEFAULT_TEMPLATE = "Type of document: {}."
#: Single-label default (embedding engine): each label is the mean of these prompts. Chosen on the dev
#: parts of five labelled sets (ops/eval/classify_zero_shot.py); the bare name is one of them, since
#: no single template beat the bare name on every set, and the mean kept the best of each.
DEFAULT_TEMPLATES = ("{}", "This is about {}.", "{} document")
#: Default NLI hypothesis, the one zero-shot NLI models are commonly trained and evaluated with.
DEFAULT_NLI_TEMPLATE = "This example is {}."


def fill_template(template: str, label: str) -> str:
    """``{}`` or ``{label}`` in the template becomes the label (no ``str.format``: a template with
    other braces must not raise or reach attributes)."""
    return template.replace("{label}", label).replace("{}", label)


def normalise_label(label: str) -> str:
    """A label name as words: ``tech_support`` -> ``tech support``, ``TechSupport`` -> ``Tech Support``,
    ``Sci/Tech`` -> ``Sci or Tech``. The result keys stay the user's own label strings; only the text
    that is embedded changes (a word piece soup of ``_`` and ``/`` matches no document)."""
    text = label.replace("_", " ")
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)
    text = re.sub(r"\s*/\s*", " or ", text)
    return " ".join(text.split())


def check_engine(requested: str, kind: str, model_id: str) -> None:
    """A submission that asked for one engine must not silently get another."""
    if requested not in ("auto", kind):
        raise DocumentError("engine_mismatch", f"model {model_id!r} runs the {kind} engine, but the submission "
                            f"asked for {requested!r}; name a suitable model with --model")


def classification(labels: Sequence[str], scores: Sequence[float], *, multi_label: bool,
                   threshold: float | Sequence[float], engine: str) -> dict[str, Any]:
    """The result of one document: the top label, every label at or above the threshold
    (multi-label; just the top one otherwise; ``threshold`` may be one per label, in their order,
    as a trained model's calibrated ones are) and every label's score.

    ``scores`` keeps the order of ``labels`` (as the submission gave them, or the model's own), not
    best first: a CSV or dataframe of many results then has the same columns in the same order, and
    ``labels`` already answers "which are best"."""
    rounded = {label: round(float(s), 4) for label, s in zip(labels, scores, strict=True)}
    top = max(rounded, key=lambda k: rounded[k])
    if multi_label:
        cut = [float(threshold)] * len(labels) if isinstance(threshold, int | float) else list(threshold)
        chosen = sorted((k for k, c in zip(rounded, cut, strict=True) if rounded[k] >= c), key=lambda k: -rounded[k])
    else:
        chosen = [top]
    return {"label": top, "labels": chosen, "scores": rounded, "engine": engine}


def empty_outcomes(texts: Sequence[str]) -> tuple[list[Any], list[int]]:
    """Outcomes pre-filled with ``empty_document`` errors, and the indexes of texts to classify."""
    outcomes: list[Any] = [DocumentError("empty_document", "document has no text to classify") for _ in texts]
    return outcomes, [i for i, t in enumerate(texts) if has_text(t)]


def start_outcomes(texts: Sequence[str], requested: str, kind: str, model_id: str) -> tuple[list[Any], list[int]]:
    """The shared start of every classify engine's ``run``: outcomes to fill and the indexes of the texts
    to classify (:func:`empty_outcomes`), or, when the submission asked for another engine than this
    one (:func:`check_engine`), that error for every document and nothing to classify."""
    try:
        check_engine(requested, kind, model_id)
    except DocumentError as e:
        return [e for _ in texts], []
    return empty_outcomes(texts)
