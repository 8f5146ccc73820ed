"""What kind of model a spec names, and which engine of each task takes that kind.

A chat model given to the extractive summarizer was loaded as a sentence encoder and its summaries
were labelled with the chat model's name; given to classify, it ran as an embedding model. Both
"succeeded". The kind is read from the model's own ``config.json`` (plain JSON, no torch), so the
worker's start check, ``docqueue models list`` and the per-document check all decide alike, and a
model of the wrong kind is refused with ``wrong_model_kind`` naming the engine that would take it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docqueue.errors import DocumentError
from docqueue.names import CLASSIFY, GENERATE, REVIEW, SUMMARIZE, TRANSLATE

#: The kinds: a decoder-only LM, an encoder-decoder, an encoder with a classification head, a bare
#: encoder (a sentence-embedding model).
CAUSAL_LM = "causal-lm"
SEQ2SEQ = "seq2seq"
SEQUENCE_CLASSIFIER = "sequence-classifier"
ENCODER = "encoder"

#: The engine of the causal-LM family, in every task.
LLM = "llm"

#: task -> engine -> the model kind it takes.
ENGINE_KINDS: dict[str, dict[str, str]] = {
    CLASSIFY: {"embedding": ENCODER, "nli": SEQUENCE_CLASSIFIER, "fine-tuned": SEQUENCE_CLASSIFIER, LLM: CAUSAL_LM},
    SUMMARIZE: {"extractive": ENCODER, "abstractive": SEQ2SEQ, LLM: CAUSAL_LM},
    TRANSLATE: {"seq2seq": SEQ2SEQ, LLM: CAUSAL_LM},
    REVIEW: {"prototypes": ENCODER, "fine-tuned": SEQUENCE_CLASSIFIER, LLM: CAUSAL_LM},
    GENERATE: {LLM: CAUSAL_LM},
}

_KIND_WORDS = {CAUSAL_LM: "a causal LM (decoder-only: GPT-2, Llama, Qwen...)",
               SEQ2SEQ: "a seq2seq model (encoder-decoder: BART, Marian, T5...)",
               SEQUENCE_CLASSIFIER: "a sequence classifier (an encoder with a classification head)",
               ENCODER: "a sentence encoder (no head)"}


def kind_of_config(config: Mapping[str, Any]) -> str:
    """The kind of a model from its ``config.json``: ``is_encoder_decoder`` (saved by every
    BART/Marian/T5 config), then the head in ``architectures``; a config naming no head is a bare
    encoder."""
    if config.get("is_encoder_decoder"):
        return SEQ2SEQ
    architectures = [str(a) for a in (config.get("architectures") or [])]
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return SEQUENCE_CLASSIFIER
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return CAUSAL_LM
    return ENCODER


def kind_at(folder: str | None) -> str | None:
    """The kind of the model saved in ``folder`` (None: no readable config.json there)."""
    if folder is None:
        return None
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return kind_of_config(config) if isinstance(config, dict) else None


def describe(kind: str) -> str:
    return _KIND_WORDS.get(kind, kind)


def engines_taking(task: str, kind: str) -> list[str]:
    """The engines of ``task`` that take a model of ``kind`` (in the table's order)."""
    return [engine for engine, wanted in ENGINE_KINDS.get(task, {}).items() if wanted == kind]


def _who_takes(task: str, kind: str) -> str:
    """Which engine would take a ``kind`` model: of this task, else of the other tasks."""
    takers = engines_taking(task, kind)
    if takers:
        return f"the {' or '.join(takers)} engine takes it (--engine {takers[0]})"
    others = [f"{t} ({', '.join(engines_taking(t, kind))})" for t in ENGINE_KINDS if engines_taking(t, kind)]
    return f"no {task} engine takes it" + (f" (it suits {'; '.join(others)})" if others else "")


def wrong_kind_reason(task: str, engine: str, kind: str, spec: str) -> str | None:
    """None when ``engine`` of ``task`` takes a ``kind`` model; else one line naming the engine (of
    this task, or of the tasks) that would take it."""
    wanted = ENGINE_KINDS.get(task, {}).get(engine)
    if wanted is None or wanted == kind:
        return None
    return (f"model {spec[:200]!r} is {describe(kind)}, but the {task} {engine} engine needs {describe(wanted)}; "
            f"{_who_takes(task, kind)}")


def check_kind(task: str, engine: str, kind: str, spec: str) -> None:
    """Raise ``wrong_model_kind`` when ``engine`` does not take a ``kind`` model."""
    reason = wrong_kind_reason(task, engine, kind, spec)
    if reason:
        raise DocumentError("wrong_model_kind", reason)


def auto_engine(task: str, kind: str, spec: str) -> str:
    """The engine a model of ``kind`` runs when the submission asks for none; ``wrong_model_kind``
    when no engine of the task takes it."""
    takers = engines_taking(task, kind)
    if not takers:
        raise DocumentError("wrong_model_kind", f"model {spec[:200]!r} is {describe(kind)}; {_who_takes(task, kind)}")
    return takers[0]
