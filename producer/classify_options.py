"""Reading ``submit classify``'s files (labels, examples) into the raw ``params`` of its messages.

Only the files are the CLI's business here: what params may say (label counts, examples' labels
among the labels, the template's slot) is ``docqueue.params.ClassifyParams``, checked by
``producer.taskopts`` like every task's. Errors are ``BadParameter`` so the CLI prints one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

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


def read_examples(path: Path) -> list[dict[str, str]]:
    """Labelled examples from a JSONL file of ``{"text": ..., "label": ...}`` lines (how many may
    travel, and that their labels are in the label set, is the params model's rule)."""
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
    if not examples:
        raise click.BadParameter(f"{path} has no examples", param_hint="--examples")
    return examples


def classify_params(*, labels: str | None, labels_file: Path | None, examples_file: Path | None, engine: str,
                    model: str | None, model_revision: str | None, multi_label: bool, threshold: float | None,
                    template: str | None, nli_model: str) -> dict[str, Any]:
    """The raw ``params`` of a classify submission, before the model checks them.

    Labels come from ``--labels``, else ``--labels-file``, else the examples' labels; a fine-tuned
    classifier brings its own. ``--engine nli`` without ``--model`` means the configured NLI model.
    """
    descriptions = read_labels_file(labels_file) if labels_file else {}
    examples = read_examples(examples_file) if examples_file else []
    names = [x.strip() for x in labels.split(",")] if labels else []
    names = [n for n in names if n] or list(descriptions) or [e["label"] for e in examples]
    params: dict[str, Any] = {"labels": list(dict.fromkeys(names))} if names or engine != "fine-tuned" else {}
    if descriptions:
        params["descriptions"] = {k: v for k, v in descriptions.items() if k in names and v}
    if examples:
        params["examples"] = examples
    if engine != "auto":
        params["engine"] = engine
    if engine == "nli" and not model:
        model = nli_model
    optional = {"model": model or None, "model_revision": model_revision or None, "multi_label": multi_label or None,
                "threshold": threshold, "template": template or None}
    params.update({k: v for k, v in optional.items() if v is not None})
    return params
