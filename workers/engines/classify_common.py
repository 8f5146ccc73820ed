"""What every classify engine shares: the parameters of a submission and the shape of a result.

The parameters arrive as JSON in the queue message (``params``), so they are checked here once and
a bad submission fails each of its documents with one clear ``invalid_params`` error instead of a
traceback. All engines answer ``{"label", "labels", "scores", "engine"}`` so scripts need not care
which engine ran.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from docqueue.errors import DocumentError
from docqueue.settings import DEFAULT_CLASSIFY_MAX_LABELS
from workers.engines.windows import has_text

#: The engines a submission may ask for; ``auto`` takes whatever the model is.
ENGINES = ("auto", "embedding", "nli", "fine-tuned")
#: Hypothesis for a label in multi-label scoring when the user gives no template (embedding engine);
#: its null (the template without a label) is what each label is measured against.
DEFAULT_TEMPLATE = "Type of document: {}."
#: Single-label default (embedding engine): each label is the mean of these prompts. Chosen on the dev
#: parts of five labelled sets (ops/eval/classify_zero_shot.py); the bare name is one of them, since
#: no single template beat the bare name on every set, and the mean kept the best of each.
DEFAULT_TEMPLATES = ("{}", "This is about {}.", "{} document")
#: Default NLI hypothesis, the one zero-shot NLI models are commonly trained and evaluated with.
DEFAULT_NLI_TEMPLATE = "This example is {}."
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Example:
    """One labelled example the user already has (few-shot)."""

    text: str
    label: str


@dataclass(frozen=True)
class ClassifyParams:
    """A submission's classify options, validated."""

    labels: list[str]
    descriptions: dict[str, str] = field(default_factory=dict)
    multi_label: bool = False
    threshold: float = DEFAULT_THRESHOLD
    template: str | None = None
    examples: tuple[Example, ...] = ()
    engine: str = "auto"


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


def _invalid(message: str) -> DocumentError:
    return DocumentError("invalid_params", message)


def _parse_examples(raw: Any) -> tuple[Example, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _invalid("'examples' must be a list of {\"text\", \"label\"} objects")
    examples = []
    for n, item in enumerate(raw, 1):
        if not (isinstance(item, dict) and isinstance(item.get("text"), str) and isinstance(item.get("label"), str)
                and item["text"].strip() and item["label"].strip()):
            raise _invalid(f"example {n} must be an object with non-empty string 'text' and 'label'")
        examples.append(Example(item["text"], item["label"].strip()))
    return tuple(examples)


def parse_params(params: Mapping[str, Any], *, need_labels: bool = True, max_examples: int = 1000,
                 max_labels: int = DEFAULT_CLASSIFY_MAX_LABELS) -> ClassifyParams:
    """Validate a submission's params; raises ``DocumentError('invalid_params')``.

    Without ``labels``, the labels of the examples are the label set (in first-seen order), so a
    user with a labelled file need not repeat its labels.
    """
    examples = _parse_examples(params.get("examples"))
    if len(examples) > max_examples:
        raise _invalid(f"{len(examples)} examples; at most {max_examples} may travel with a submission "
                       "(DOCQUEUE_CLASSIFY_MAX_EXAMPLES)")
    labels = params.get("labels")
    if labels is None:
        labels = list(dict.fromkeys(e.label for e in examples))
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
        raise _invalid("'labels' must be a list of label names")
    labels = list(dict.fromkeys(x.strip() for x in labels))
    if len(labels) > max_labels:
        raise _invalid(f"{len(labels)} labels; at most {max_labels} per submission (DOCQUEUE_CLASSIFY_MAX_LABELS)")
    if need_labels and len(labels) < 2:
        raise _invalid("classify needs 'labels': a list of at least two label names")
    unknown = sorted({e.label for e in examples} - set(labels))
    if unknown:
        raise _invalid(f"examples use labels that are not among the labels: {', '.join(unknown[:5])}")
    descriptions = params.get("descriptions") or {}
    if not isinstance(descriptions, dict):
        raise _invalid("'descriptions' must map label -> description")
    multi_label = params.get("multi_label", False)
    if not isinstance(multi_label, bool):
        raise _invalid("'multi_label' must be true or false")
    threshold = params.get("threshold", DEFAULT_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise _invalid("'threshold' must be a number between 0 and 1")
    template = params.get("template")
    if template is not None and (not isinstance(template, str) or ("{}" not in template and "{label}" not in template)):
        raise _invalid("'template' must be a string containing {} (or {label}) where the label goes")
    engine = params.get("engine") or "auto"
    if engine not in ENGINES:
        raise _invalid(f"'engine' must be one of {', '.join(ENGINES)}, not {engine!r}")
    return ClassifyParams(labels=labels, descriptions={str(k): str(v) for k, v in descriptions.items() if v},
                          multi_label=multi_label, threshold=float(threshold), template=template,
                          examples=examples, engine=engine)


def check_engine(requested: str, kind: str, model_id: str) -> None:
    """A submission that asked for one engine must not silently get another."""
    if requested not in ("auto", kind):
        raise DocumentError("engine_mismatch", f"model {model_id!r} runs the {kind} engine, but the submission "
                            f"asked for {requested!r}; name a suitable model with --model")


def classification(labels: Sequence[str], scores: Sequence[float], *, multi_label: bool, threshold: float,
                   engine: str) -> dict[str, Any]:
    """The result of one document: the top label, every label at or above the threshold
    (multi-label; just the top one otherwise) and every label's score.

    ``scores`` keeps the order of ``labels`` (as the submission gave them, or the model's own), not
    best first: a CSV or dataframe of many results then has the same columns in the same order, and
    ``labels`` already answers "which are best"."""
    rounded = {label: round(float(s), 4) for label, s in zip(labels, scores, strict=True)}
    top = max(rounded, key=lambda k: rounded[k])
    if multi_label:
        chosen = sorted((k for k, v in rounded.items() if v >= threshold), key=lambda k: -rounded[k])
    else:
        chosen = [top]
    return {"label": top, "labels": chosen, "scores": rounded, "engine": engine}


def empty_outcomes(texts: Sequence[str]) -> tuple[list[Any], list[int]]:
    """Outcomes pre-filled with ``empty_document`` errors, and the indexes of texts to classify."""
    outcomes: list[Any] = [DocumentError("empty_document", "document has no text to classify") for _ in texts]
    return outcomes, [i for i, t in enumerate(texts) if has_text(t)]
