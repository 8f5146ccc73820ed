"""Translation with one seq2seq model per language pair (opus-mt by default), several resident.

Each document's source language is given or detected; its pair (``en-de``) picks the model from the
settings mapping. Models load on first use and stay resident while their weights fit a memory
budget; past it the least recently used pair is unloaded. A pair nobody configured, or whose model
is missing, fails only the documents that need it.

Layout is kept: the text is split into paragraphs (blank lines) and each paragraph into sentences;
sentences are translated one by one (an over-long one in word-boundary pieces, so a 100-page
document never exceeds the model's window) in length-sorted batches across the message's documents,
then put back with the original whitespace and paragraph breaks. All of a document is translated, but
it is read window by window (a few thousand characters, cut between sentences) and generated a group
of windows at a time, so memory holds one group plus the translation so far, never the whole text
split or tokenised at once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from docqueue.errors import DocumentError, ModelUnavailableError
from docqueue.models_catalog import pair_model
from docqueue.params import TranslateParams
from workers.engines import Outcome
from workers.engines.chunking import paragraph_spans, split_long, window_sentences
from workers.engines.langdetect import detect_language
from workers.engines.seq2seq import Seq2SeqModel
from workers.engines.windows import bounded_counter, has_text, window_chars

log = logging.getLogger(__name__)


#: Sentences are generated in groups of about this many windows of text (length-sorted inside a
#: group): big enough that batches stay full, small enough that a 100 MB document streams.
GROUP_WINDOWS = 8

ModelLoader = Callable[[str, "str | None"], Seq2SeqModel]


class ResidentModels:
    """Seq2seq models kept in memory within a byte budget, least recently used unloaded first.

    The budget is checked after a load (a model's size is known only then), so memory may briefly
    hold the budget plus one model; the model just loaded is never the one unloaded.
    """

    def __init__(self, load: ModelLoader, budget_bytes: int) -> None:
        self._load = load
        self.budget_bytes = budget_bytes
        self._models: OrderedDict[tuple[str, str | None], Seq2SeqModel] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    @property
    def resident(self) -> list[str]:
        return [spec for spec, _ in self._models]

    @property
    def used_bytes(self) -> int:
        return sum(m.memory_bytes for m in self._models.values())

    def get(self, spec: str, revision: str | None = None) -> Seq2SeqModel:
        """The resident model (loading it if needed); raises ModelUnavailableError."""
        key = (spec, revision)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
            model = self._load(spec, revision)
            self.loads += 1
            self._models[key] = model
            while len(self._models) > 1 and self.used_bytes > self.budget_bytes:
                evicted, _ = self._models.popitem(last=False)
                log.info("unloaded translation model %s to stay within %d MiB", evicted[0],
                         self.budget_bytes // 2**20)
            return model


@dataclass
class _Unit:
    """One piece of text to translate and where its output goes."""

    doc: int
    paragraph: int
    text: str
    trailing: str  # whitespace after the sentence in the original
    output: str = ""


@dataclass
class _Job:
    source: str
    spec: str
    paragraphs: list[str] = field(default_factory=list)  # separators after each paragraph


class Translator:
    """Resident engine for ``translate``: picks, loads and runs the model of each document's pair."""

    def __init__(self, models: ResidentModels, pairs: Mapping[str, str] | None = None,
                 fixed: tuple[str, str | None] | None = None,
                 detect: Callable[[str], str | None] = detect_language) -> None:
        if (pairs is None) == (fixed is None):
            raise ValueError("give either a pair -> model mapping or one fixed model")
        self.models = models
        self.pairs = dict(pairs or {})
        self.fixed = fixed
        self.detect = detect
        self.model_id = fixed[0] if fixed else "by-pair"
        self.model_revision = fixed[1] if fixed else None
        #: the runtime of the model that ran last (every model of a process follows one device policy)
        self.runtime: str | None = None

    def _model_for(self, source: str, target: str) -> str:
        if self.fixed:
            return self.fixed[0]
        spec = self.pairs.get(f"{source}-{target}")
        if spec is None:
            known = ", ".join(sorted(self.pairs)) or "none"
            raise DocumentError("unsupported_language_pair",
                                f"no translation model configured for {source}-{target} (configured: {known}); "
                                f"add one to DOCQUEUE_TRANSLATE_MODELS (usually {pair_model(source, target)}: "
                                f"`docqueue models pull {pair_model(source, target)}`) or pass --model")
        return spec

    def _plan(self, text: str, source: str, target: str) -> _Job:
        if not has_text(text):
            raise DocumentError("empty_document", "document has no text to translate")
        if source == "auto":
            detected = self.detect(text)
            if detected is None:
                raise DocumentError("language_undetected",
                                    "could not tell the document's language; pass --from LANG")
            source = detected
        return _Job(source=source, spec=self._model_for(source, target) if source != target else "")

    def run(self, texts: Sequence[str], params: TranslateParams) -> list[Outcome]:
        source, target = params.source, params.to
        outcomes: list[Outcome] = [DocumentError("empty_document", "") for _ in texts]
        jobs: dict[int, _Job] = {}
        for i, text in enumerate(texts):
            try:
                jobs[i] = self._plan(text, source, target)
            except DocumentError as e:
                outcomes[i] = e
        by_model: dict[str, list[int]] = {}
        for i, job in jobs.items():
            by_model.setdefault(job.spec, []).append(i)
        used: list[str] = []
        for spec, docs in by_model.items():
            if not spec:  # already in the target language: nothing to do, keep the text as it is
                for i in docs:
                    outcomes[i] = self._result(texts[i].strip(), jobs[i], target)
                continue
            revision = self.model_revision if self.fixed else None
            try:
                model = self.models.get(spec, revision)
            except ModelUnavailableError as e:
                for i in docs:
                    outcomes[i] = DocumentError("model_unavailable", str(e))
                continue
            used.append(spec)
            self.runtime = model.runtime
            for i, translation in zip(docs, self._translate(model, [texts[i] for i in docs],
                                                            [jobs[i] for i in docs], params), strict=True):
                outcomes[i] = self._result(translation, jobs[i], target)
        if not self.fixed and used:
            # The pipeline records one model per message: name every pair model this message used.
            self.model_id = ",".join(dict.fromkeys(used))
        return outcomes

    @staticmethod
    def _result(translation: str, job: _Job, target: str) -> dict[str, Any]:
        return {"translation": translation, "source_language": job.source, "target_language": target,
                "model": job.spec or None}

    def _translate(self, model: Seq2SeqModel, texts: Sequence[str], jobs: Sequence[_Job],
                   params: TranslateParams) -> list[str]:
        """Every document translated in full, streamed: paragraphs and windows are read in order,
        and the sentences are generated a group at a time (``GROUP_WINDOWS`` windows, length-sorted
        inside the group), so the working set is a group, not the message; only the output grows
        with the document."""
        size = window_chars(model.max_input_tokens)
        count = bounded_counter(model.count_tokens, size)
        options = {"num_beams": params.num_beams}
        rebuilt: list[list[list[str]]] = [[] for _ in jobs]
        pending: list[_Unit] = []

        def flush() -> None:
            for unit, output in zip(pending, model.generate([u.text for u in pending], options), strict=True):
                rebuilt[unit.doc][unit.paragraph].append(output + unit.trailing)
            pending.clear()

        held = 0
        for d, (text, job) in enumerate(zip(texts, jobs, strict=True)):
            for p, (start, end, separator) in enumerate(paragraph_spans(text)):
                job.paragraphs.append(separator)
                rebuilt[d].append([])
                for sentences in window_sentences(text, start, end, size, job.source):
                    lengths = count([s for s, _ in sentences])
                    for (sentence, trailing), n in zip(sentences, lengths, strict=True):
                        pieces = split_long(sentence, count, model.chunk_budget) \
                            if n > model.chunk_budget else [sentence]
                        for k, piece in enumerate(pieces):
                            pending.append(_Unit(d, p, piece, trailing if k == len(pieces) - 1 else " "))
                            held += len(piece)
                    if held >= GROUP_WINDOWS * size:
                        flush()
                        held = 0
        flush()
        return ["".join("".join(parts).rstrip() + sep for parts, sep in zip(paras, job.paragraphs, strict=True))
                .rstrip() for paras, job in zip(rebuilt, jobs, strict=True)]
