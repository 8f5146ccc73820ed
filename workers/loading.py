"""Model loading, in one place: which engine a model spec means, and how its model is built.

Engines (``workers.engines``) are pure: they get a built model and run texts. Everything that
depends on the worker's runtime (the device, its dtype, token budgets, settings) is decided here.
Loaders get a :class:`ModelSource` (the registry, in the worker) for the models engines share (one
MiniLM for classify, extractive summaries and review); they never import the registry, so
``registry -> loading -> engines`` has no way back.

The classify engine follows the model's own ``config.json``: a sentence-embedding model (no
classification head) runs the embedding engine and shares the process's encoder; a classification
head whose labels are entailment/contradiction runs the NLI engine; any other classification head is
a fine-tuned classifier with its own labels; a causal LM (decoder-only) runs the ``llm`` engine, in
every task, with one resident copy per process (:meth:`ModelSource.llm`). A submission may still
*ask* for an engine (``--engine``): a model of a kind that engine does not take is refused before
anything loads (``wrong_model_kind``, :mod:`docqueue.model_kinds`), and an engine refuses, per
document, a request it cannot honour (``engine_mismatch``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from docqueue.errors import ModelUnavailableError
from docqueue.model_kinds import CAUSAL_LM
from docqueue.models_catalog import model_kind
from docqueue.names import CLASSIFY, GENERATE, REVIEW, SUMMARIZE, TRANSLATE
from docqueue.onnx_artifacts import read_artifact
from docqueue.settings import TRANSLATE_BY_PAIR, Settings
from workers.device import forward_token_budget, inference_dtype, resolve_device
from workers.engines import TaskEngine
from workers.engines.classify import ZeroShotEmbeddingClassifier
from workers.engines.embedding import SentenceEncoder, resolve_model
from workers.engines.llm import CausalLM, Limits, LLMClassifier, LLMGenerator, LLMReviewer, LLMSummarizer, LLMTranslator
from workers.engines.nli import NLIZeroShotClassifier
from workers.engines.onnx_encoder import OnnxSentenceEncoder, model_revision
from workers.engines.review.engine import ContractReviewer
from workers.engines.review.loader import is_cuad_classifier
from workers.engines.review.scorer import ClassifierScorer, PrototypeScorer
from workers.engines.seq2seq import Seq2SeqModel, is_seq2seq
from workers.engines.sequence_classifier import FineTunedClassifier, SequenceClassifierModel, classifier_kind
from workers.engines.summarize import AbstractiveSummarizer, ExtractiveSummarizer
from workers.engines.translate import ResidentModels, Translator

#: Sequence classifiers read up to this many tokens per window (their own limit permitting).
CLASSIFIER_MAX_TOKENS = 512


class ModelSource(Protocol):
    """What a loader needs from the process's model holder (:class:`workers.registry.Registry`)."""

    settings: Settings
    loads: int  # models loaded so far: tests check it stays at one per model

    def encoder(self, spec: str, revision: str | None = None) -> SentenceEncoder: ...

    def seq2seq(self, spec: str, revision: str | None = None) -> Seq2SeqModel: ...

    def llm(self, spec: str, revision: str | None = None) -> CausalLM: ...


def device_and_dtype(settings: Settings) -> tuple[torch.device, torch.dtype]:
    """The device policy every model of this process follows (``DOCQUEUE_DEVICE``,
    ``DOCQUEUE_CPU_DTYPE``): encoders, seq2seq and classifiers alike, loaded once in that dtype."""
    device = resolve_device(settings.device)
    return device, inference_dtype(device, settings.cpu_dtype)


def build_encoder(settings: Settings, spec: str, revision: str | None) -> SentenceEncoder:
    """A sentence encoder on this process's device, with its dtype and token budget: torch in the
    policy's dtype, or ONNX Runtime int8 for a model listed in ``DOCQUEUE_ONNX_MODELS`` (its artifact
    must exist and match the model's revision; the torch weights are then never loaded)."""
    device, dtype = device_and_dtype(settings)
    ref = resolve_model(spec, revision)
    onnx = spec in settings.onnx_models
    # ONNX runs int8, not bf16: it keeps the fp32 budget, which int8 was measured with
    batch_tokens = forward_token_budget(settings.forward_max_tokens, settings.batch_max_tokens, device,
                                        torch.float32 if onnx else dtype)
    if onnx:
        expected = model_revision(ref)
        artifact = read_artifact(settings, spec, revision, expected)
        return OnnxSentenceEncoder(ref, artifact, expected, max_length=settings.max_tokens_per_document,
                                   batch_tokens=batch_tokens)
    return SentenceEncoder(ref, device, max_length=settings.max_tokens_per_document, batch_tokens=batch_tokens,
                           dtype=dtype)


def build_seq2seq(settings: Settings, spec: str, revision: str | None) -> Seq2SeqModel:
    """A seq2seq model on this process's device (not shared: each engine holds its own)."""
    device, dtype = device_and_dtype(settings)
    return Seq2SeqModel(spec, revision, device, batch_tokens=settings.batch_max_tokens, dtype=dtype)


def build_causal_lm(settings: Settings, spec: str, revision: str | None) -> CausalLM:
    """A causal LM on this process's device, in its dtype (shared by every task of the process)."""
    device, dtype = device_and_dtype(settings)  # DOCQUEUE_CPU_DTYPE too (it was read as auto here)
    return CausalLM(spec, revision, device, batch_tokens=settings.batch_max_tokens, dtype=dtype)


def llm_limits(settings: Settings) -> Limits:
    """The generation limits of the llm engine (DOCQUEUE_LLM_MAX_NEW_TOKENS, DOCQUEUE_LLM_DOCUMENT_TIMEOUT_S)."""
    return Limits(max_new_tokens=dict(settings.llm_max_new_tokens), document_timeout_s=settings.llm_document_timeout_s)


def is_causal(spec: str, revision: str | None) -> bool:
    """Whether ``spec`` is a causal LM on this machine (read from its config.json alone)."""
    return model_kind(spec, revision) == CAUSAL_LM


def load_classify(source: ModelSource, spec: str, revision: str | None) -> TaskEngine:
    """The classify engine the model's config.json means; raises ModelUnavailableError with one line
    that says how to get the model when it is not on this machine."""
    settings = source.settings
    if is_causal(spec, revision):
        return LLMClassifier(source.llm(spec, revision))
    ref = resolve_model(spec, revision)
    kind = classifier_kind(ref)
    if kind == "embedding":
        return ZeroShotEmbeddingClassifier(source.encoder(spec, revision))
    device, dtype = device_and_dtype(settings)
    model = SequenceClassifierModel(ref, device, max_length=CLASSIFIER_MAX_TOKENS,
                                    batch_tokens=settings.batch_max_tokens, dtype=dtype)
    source.loads += 1
    return NLIZeroShotClassifier(model) if kind == "nli" else FineTunedClassifier(model)


def load_summarize(source: ModelSource, spec: str, revision: str | None) -> TaskEngine:
    """The model decides the engine: a seq2seq model writes summaries, a sentence encoder picks
    sentences (a submission asking for the other engine gets a clear per-document error)."""
    limit = source.settings.analysis_max_chars
    if is_causal(spec, revision):
        return LLMSummarizer(source.llm(spec, revision), llm_limits(source.settings))
    if is_seq2seq(spec, revision):
        return AbstractiveSummarizer(source.seq2seq(spec, revision), max_chars=limit)
    return ExtractiveSummarizer(source.encoder(spec, revision), max_chars=limit)


def load_translate(source: ModelSource, spec: str, revision: str | None) -> TaskEngine:
    """By pair (the settings mapping, models loaded on first use) or one fixed model for all."""
    settings = source.settings
    if spec != TRANSLATE_BY_PAIR and is_causal(spec, revision):
        return LLMTranslator(source.llm(spec, revision), llm_limits(settings))
    models = ResidentModels(source.seq2seq, settings.translate_memory_mb * 2**20)
    if spec == TRANSLATE_BY_PAIR:
        return Translator(models, pairs=settings.translate_models)
    return Translator(models, fixed=(spec, revision))


def load_review(source: ModelSource, spec: str, revision: str | None) -> TaskEngine:
    """A fine-tuned classifier with CUAD labels scores clauses itself; a causal LM runs the llm engine
    (JSON held to a schema, quotes found in the text); any other model is the encoder of the shipped
    prototypes."""
    settings = source.settings
    if is_causal(spec, revision):
        return LLMReviewer(source.llm(spec, revision), llm_limits(settings))
    ref = resolve_model(spec, revision)
    if is_cuad_classifier(ref.location, ref.revision):
        try:
            device, dtype = device_and_dtype(settings)
            scorer = ClassifierScorer(ref.location, ref.revision, device,
                                      max_length=settings.max_tokens_per_document, dtype=dtype)
        except (OSError, ValueError) as e:
            raise ModelUnavailableError(f"cannot load review classifier {spec!r}: {e}".splitlines()[0]) from e
        return ContractReviewer(scorer, spec, ref.revision, max_chars=settings.analysis_max_chars)
    encoder = source.encoder(spec, revision)
    try:
        prototypes = PrototypeScorer.load(encoder)
    except ValueError as e:
        raise ModelUnavailableError(f"review model {spec!r}: {e}; the shipped prototypes need the encoder they "
                                    f"were built with, or give a fine-tuned classifier with CUAD labels") from e
    return ContractReviewer(prototypes, spec, encoder.revision, max_chars=settings.analysis_max_chars)


def load_generate(source: ModelSource, spec: str, revision: str | None) -> TaskEngine:
    """Chat completions: a causal LM only (any other kind was refused as ``wrong_model_kind``)."""
    return LLMGenerator(source.llm(spec, revision), llm_limits(source.settings))


Loader = Callable[[ModelSource, str, str | None], TaskEngine]
#: How to build each task's engine from a model spec.
LOADERS: dict[str, Loader] = {
    CLASSIFY: load_classify, SUMMARIZE: load_summarize, TRANSLATE: load_translate, REVIEW: load_review,
    GENERATE: load_generate,
}
