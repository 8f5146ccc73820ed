"""Turning ``submit classify`` options into the JSON ``params`` of its queue messages.

Kept apart from the Click wiring so the rules (which options need labels, how an examples file
is read, how large it may be) are plain functions with plain errors. Errors are ``UsageError`` /
``BadParameter`` so the CLI prints one line, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from docqueue.settings import DEFAULT_CLASSIFY_MAX_LABELS

#: An examples file travels in every message of a submission; refuse clearly what would bloat them.
MAX_EXAMPLES_BYTES = 4 * 2**20


def read_labels_file(path: Path) -> dict[str, str]:
    """Labels with descriptions: a JSON object {label: description}, or lines 'label: description'."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise click.BadParameter("a JSON labels file must be an object of label -> description")
        return {str(k).strip(): v.strip() for k, v in data.items()}
    labels: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            label, _, description = line.partition(":")
            labels[label.strip()] = description.strip()
    return labels


def read_examples(path: Path, max_examples: int) -> list[dict[str, str]]:
    """Labelled examples from a JSONL file of ``{"text": ..., "label": ...}`` lines."""
    size = path.stat().st_size
    if size > MAX_EXAMPLES_BYTES:
        raise click.BadParameter(f"{path} is {size / 2**20:.1f} MiB; examples travel with every queue message, so "
                                 f"keep them under {MAX_EXAMPLES_BYTES // 2**20} MiB (a few per label is enough)",
                                 param_hint="--examples")
    examples = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise click.BadParameter(f"{path} line {n} is not JSON: {e.msg}", param_hint="--examples") from e
        if not (isinstance(row, dict) and isinstance(row.get("text"), str) and isinstance(row.get("label"), str)
                and row["text"].strip() and str(row["label"]).strip()):
            raise click.BadParameter(f'{path} line {n} must be an object with non-empty "text" and "label"',
                                     param_hint="--examples")
        examples.append({"text": row["text"], "label": row["label"].strip()})
    if len(examples) > max_examples:
        raise click.BadParameter(f"{path} has {len(examples)} examples; at most {max_examples} "
                                 "(DOCQUEUE_CLASSIFY_MAX_EXAMPLES)", param_hint="--examples")
    if not examples:
        raise click.BadParameter(f"{path} has no examples", param_hint="--examples")
    return examples


def classify_params(*, labels: str | None, labels_file: Path | None, examples_file: Path | None, engine: str,
                    model: str | None, model_revision: str | None, multi_label: bool, threshold: float | None,
                    template: str | None, nli_model: str, max_examples: int,
                    max_labels: int = DEFAULT_CLASSIFY_MAX_LABELS) -> dict[str, Any]:
    """The ``params`` of a classify submission.

    Labels come from ``--labels``, else ``--labels-file``, else the examples' labels; a fine-tuned
    classifier brings its own. ``--engine nli`` without ``--model`` means the configured NLI model.
    """
    descriptions = read_labels_file(labels_file) if labels_file else {}
    examples = read_examples(examples_file, max_examples) if examples_file else []
    names = [x.strip() for x in labels.split(",")] if labels else []
    names = [n for n in names if n] or list(descriptions) or [e["label"] for e in examples]
    names = list(dict.fromkeys(names))
    if engine != "fine-tuned" and len(names) < 2:
        raise click.UsageError("classify needs at least two labels (--labels a,b, --labels-file or --examples); "
                               "only --engine fine-tuned takes its labels from the model")
    if len(names) > max_labels:
        raise click.UsageError(f"{len(names)} labels; at most {max_labels} per submission "
                               "(DOCQUEUE_CLASSIFY_MAX_LABELS): every document is scored against each")
    unknown = sorted({e["label"] for e in examples} - set(names))
    if names and unknown:
        raise click.BadParameter(f"examples use labels missing from the label set: {', '.join(unknown[:5])}",
                                 param_hint="--examples")
    if examples and engine in ("nli", "fine-tuned"):
        raise click.UsageError(f"--examples steer the embedding engine; --engine {engine} cannot use them")
    if model_revision and not model:
        raise click.UsageError("--model-revision needs --model")
    if template is not None and "{}" not in template and "{label}" not in template:
        raise click.BadParameter("put {} where the label goes, e.g. 'This text is about {}.'", param_hint="--template")
    params: dict[str, Any] = {"labels": names}
    if descriptions:
        params["descriptions"] = {k: v for k, v in descriptions.items() if k in names and v}
    if examples:
        params["examples"] = examples
    if engine != "auto":
        params["engine"] = engine
    if engine == "nli" and not model:
        model = nli_model
    if model:
        params["model"] = model
        if model_revision:
            params["model_revision"] = model_revision
    if multi_label:
        params["multi_label"] = True
    if threshold is not None:
        params["threshold"] = threshold
    if template:
        params["template"] = template
    return params
