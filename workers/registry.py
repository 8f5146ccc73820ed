"""Resident models: loaded once per worker process, after any fork, and reused by every task.

The registry is keyed by process id, so a prefork child never uses an object its parent created
(CUDA contexts and tokenizer thread pools do not survive a fork). Engines are keyed by (task,
model): a submission may name its own model (``params["model"]``), which then stays resident too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from docqueue import model_store
from docqueue.errors import DocumentError, ModelUnavailableError
from docqueue.model_store import StoredModel
from docqueue.models_catalog import kind_problem, start_check, summarize_default_model
from docqueue.names import CLASSIFY, REVIEW, SUMMARIZE
from docqueue.settings import Settings, model_store_dir
from docqueue.webhooks import WEBHOOK_QUEUE
from workers.engines import TaskEngine
from workers.engines.embedding import SentenceEncoder
from workers.engines.llm import CausalLM, Limits
from workers.engines.seq2seq import Seq2SeqModel
from workers.engines.trained import TrainedClassifier
from workers.loading import LOADERS, build_causal_lm, build_encoder, build_seq2seq, llm_limits
from workers.metrics import MODEL_LOAD, RESIDENT
from workers.model_policy import ModelPolicy

_M = TypeVar("_M")

log = logging.getLogger(__name__)

#: Tasks whose params name an engine (``params["engine"]``); the others pick it by the model's kind.
ENGINE_PARAM_TASKS = frozenset({CLASSIFY, SUMMARIZE, REVIEW})


def configured_model(settings: Settings, task: str) -> tuple[str, str | None]:
    """The task's default model spec and revision, from ``DOCQUEUE_<TASK>_MODEL[_REVISION]``."""
    return getattr(settings, f"{task}_model"), getattr(settings, f"{task}_model_revision", None)


def default_model(settings: Settings, task: str, params: Mapping[str, Any]) -> tuple[str, str | None]:
    """The model a message that names none runs: summarize's depends on the engine it asks for."""
    if task == SUMMARIZE:
        engine = params.get("engine")
        return summarize_default_model(settings, str(engine) if engine in ("extractive", "abstractive", "llm")
                                       else None)
    if task in (CLASSIFY, REVIEW) and params.get("engine") == "llm" and settings.llm_model:
        return settings.llm_model, settings.llm_model_revision
    if task == CLASSIFY and params.get("engine") == "nli":  # the NLI model, for publishers that name none
        return settings.classify_nli_model, None
    return configured_model(settings, task)


def unavailable_reason(settings: Settings, task: str) -> str | None:
    """None when the task's model is on this machine; else one line saying what to do (the same
    check and words as ``docqueue models list``). The ``webhooks`` queue needs no model, only the
    signing secret: no webhook leaves unsigned."""
    if task == WEBHOOK_QUEUE:
        return None if settings.webhook_secret else (
            f"{WEBHOOK_QUEUE}: DOCQUEUE_WEBHOOK_SECRET is not set; set it to 'whsec_' + base64 of 24-64 random "
            "bytes (the key receivers verify signatures with)")
    return start_check(settings, task)


class Registry:
    """The engines of one process, loaded on first use or by :meth:`preload`."""

    #: Submissions may name models; bound how many extra engines one process keeps resident.
    max_engines = 8

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = ModelPolicy(settings)
        self._engines: dict[tuple[str, str, str | None], TaskEngine] = {}
        self._encoders: dict[tuple[str, str | None], SentenceEncoder] = {}
        self._llms: dict[tuple[str, str | None], CausalLM] = {}
        self._kinds_checked: dict[tuple[str, str, str | None, str | None], str | None] = {}
        self._lock = threading.RLock()
        self.loads = 0  # how many models were loaded: tests check it stays at one per model

    def get(self, task: str, model: str | None = None, revision: str | None = None,
            params: Mapping[str, Any] | None = None) -> TaskEngine:
        """The resident engine for ``task`` with ``model`` (default: the configured one for the
        message's ``params``).

        A model named by a submission that cannot be loaded is a per-document error (the batch's
        other messages, and other batches, go on); the configured model was checked at start. A
        model the worker does not allow (:mod:`workers.model_policy`) is never opened.
        """
        default_spec, default_rev = default_model(self.settings, task, params or {})
        stored = self._stored(task, model) if model and model != default_spec else None
        if model and model != default_spec and stored is None:
            self.policy.check(model)
        spec, rev = (model, revision) if model else (default_spec, default_rev)
        if not spec:  # generate's model is DOCQUEUE_LLM_MODEL, which may be unset
            raise DocumentError("model_unavailable", f"{task}: the message names no model and this worker has none "
                                "configured (DOCQUEUE_LLM_MODEL)")
        if stored is None:
            self._check_kind(task, spec, rev, params or {})
        key = (task, stored.spec if stored else spec, None if stored else rev)
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                if len(self._engines) >= self.max_engines:
                    raise DocumentError("too_many_models", f"this worker already holds {self.max_engines} "
                                        f"models; cannot also load {spec!r}")
                log.info("loading %s model %s in process %d", task, key[1], os.getpid())
                began = time.perf_counter()
                try:
                    engine = self._load_stored(stored) if stored else LOADERS[task](self, spec, rev)
                except ModelUnavailableError as e:
                    raise DocumentError("model_unavailable", str(e)) from e
                MODEL_LOAD.labels(task=task, model=engine.model_id).observe(time.perf_counter() - began)
                self._engines[key] = engine
                RESIDENT.labels(task=task).set(sum(1 for k in self._engines if k[0] == task))
            return engine

    def _check_kind(self, task: str, spec: str, rev: str | None, params: Mapping[str, Any]) -> None:
        """``wrong_model_kind`` before anything is loaded: a chat model must not run as a sentence
        encoder (or a summarizer's sentence picker) and be named in the result as if it had. The
        config.json is read once per (task, model, engine asked for)."""
        requested = params.get("engine") if task in ENGINE_PARAM_TASKS else None
        key = (task, spec, rev, requested if isinstance(requested, str) else None)
        if key not in self._kinds_checked:
            self._kinds_checked[key] = kind_problem(task, key[3], spec, rev)
        problem = self._kinds_checked[key]
        if problem:
            raise DocumentError("wrong_model_kind", problem)

    def resident(self) -> list[tuple[str, str, str | None]]:
        """Keys ``(task, model spec, revision)`` of the engines this process holds."""
        with self._lock:
            return list(self._engines)

    def _load_stored(self, stored: StoredModel) -> TaskEngine:
        return TrainedClassifier(stored, self.encoder(str(stored.path)))

    def _stored(self, task: str, spec: str) -> StoredModel | None:
        """The store model a classify message names (``NAME[@VERSION]``, ``docqueue train``): the
        worker's own store is trusted like its configured models, so the allow-list is not asked.
        ``NAME`` alone is resolved per message, so a new version is used as soon as it is published."""
        if task != CLASSIFY:
            return None
        try:
            return model_store.lookup(model_store_dir(self.settings), spec)
        except model_store.StoreError as e:
            raise DocumentError("model_unavailable", str(e)) from e

    def _shared(self, cache: dict[tuple[str, str | None], _M], build: Callable[[Settings, str, str | None], _M],
                spec: str, revision: str | None) -> _M:
        """The model ``(spec, revision)`` from ``cache``, built (and counted as a load) the first time,
        under the lock so two threads never load the same weights twice."""
        key = (spec, revision)
        with self._lock:
            model = cache.get(key)
            if model is None:
                model = cache[key] = build(self.settings, spec, revision)
                self.loads += 1
            return model

    def encoder(self, spec: str, revision: str | None = None) -> SentenceEncoder:
        """A sentence encoder shared by every engine of this process that names the same model,
        so classify, extractive summaries and contract review hold one copy of MiniLM."""
        return self._shared(self._encoders, build_encoder, spec, revision)

    def seq2seq(self, spec: str, revision: str | None = None) -> Seq2SeqModel:
        """A seq2seq model on this process's device (not shared: each engine holds its own)."""
        model = build_seq2seq(self.settings, spec, revision)
        self.loads += 1
        return model

    def llm(self, spec: str, revision: str | None = None) -> CausalLM:
        """A causal LM shared by every task of this process that names it: one copy of the
        weights serves every llm task."""
        return self._shared(self._llms, build_causal_lm, spec, revision)

    def llm_limits(self) -> Limits:
        """The llm engine's generation limits from this process's settings."""
        return llm_limits(self.settings)

    def preload(self, tasks: list[str]) -> None:
        for task in tasks:
            if task in LOADERS:  # queues without a model (webhooks) load nothing
                self.get(task)


_registry: Registry | None = None
_registry_pid: int | None = None


def process_registry(settings: Settings) -> Registry:
    """This process's registry (a fresh one in a forked child)."""
    global _registry, _registry_pid
    if _registry is None or _registry_pid != os.getpid():
        _registry, _registry_pid = Registry(settings), os.getpid()
    return _registry
