"""Resident models: loaded once per worker process, after any fork, and reused by every task.

The registry is keyed by process id, so a prefork child never uses an object its parent created
(CUDA contexts and tokenizer thread pools do not survive a fork).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from docqueue.names import CLASSIFY
from docqueue.settings import Settings
from workers.device import resolve_device
from workers.engines import TaskEngine
from workers.engines.classify import ZeroShotEmbeddingClassifier
from workers.engines.embedding import SentenceEncoder, model_path_exists, resolve_model

log = logging.getLogger(__name__)


def _load_classify(registry: Registry) -> TaskEngine:
    settings = registry.settings
    return ZeroShotEmbeddingClassifier(registry.encoder(settings.classify_model, settings.classify_model_revision))


#: How to build each task's engine; a loader gets the registry so engines can share models.
LOADERS: dict[str, Callable[[Registry], TaskEngine]] = {CLASSIFY: _load_classify}


def configured_model(settings: Settings, task: str) -> str:
    return {CLASSIFY: settings.classify_model}[task]


def unavailable_reason(settings: Settings, task: str) -> str | None:
    """None when the task's model is on this machine; else one line saying what to do."""
    spec = configured_model(settings, task)
    if model_path_exists(spec):
        return None
    return (f"{task}: model {spec!r} is not available on this machine; download it into the HF cache "
            f"(HF_HOME) or set DOCQUEUE_{task.upper()}_MODEL to a local path")


class Registry:
    """The engines of one process, loaded on first use or by :meth:`preload`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engines: dict[str, TaskEngine] = {}
        self._encoders: dict[tuple[str, str | None], SentenceEncoder] = {}
        self._lock = threading.RLock()
        self.loads = 0  # how many times a model was loaded: tests check it stays at one per task

    def get(self, task: str) -> TaskEngine:
        with self._lock:
            engine = self._engines.get(task)
            if engine is None:
                log.info("loading %s model %s in process %d", task, configured_model(self.settings, task),
                         os.getpid())
                engine = self._engines[task] = LOADERS[task](self)
            return engine

    def encoder(self, spec: str, revision: str | None = None) -> SentenceEncoder:
        """A sentence encoder shared by every engine of this process that names the same model,
        so classify, extractive summaries and contract review hold one copy of MiniLM."""
        key = (spec, revision)
        encoder = self._encoders.get(key)
        if encoder is None:
            encoder = self._encoders[key] = SentenceEncoder(
                resolve_model(spec, revision), resolve_device(self.settings.device),
                max_length=self.settings.max_tokens_per_document, batch_tokens=self.settings.batch_max_tokens)
            self.loads += 1
        return encoder

    def preload(self, tasks: list[str]) -> None:
        for task in tasks:
            self.get(task)


_registry: Registry | None = None
_registry_pid: int | None = None


def process_registry(settings: Settings) -> Registry:
    """This process's registry (a fresh one in a forked child)."""
    global _registry, _registry_pid
    if _registry is None or _registry_pid != os.getpid():
        _registry, _registry_pid = Registry(settings), os.getpid()
    return _registry
