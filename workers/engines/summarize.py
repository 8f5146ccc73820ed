"""Summaries, abstractive (a seq2seq model writes one) or extractive (the document's own sentences).

Abstractive: a document longer than the model's window is cut at sentence boundaries into
token-budgeted chunks, each chunk is summarised, and the joined chunk summaries are summarised
again, round after round, until they fit one window (map-reduce), so a 100-page report works with a
1024-token model. Chunks of every document in the message are generated together, length-sorted.

Extractive: runs offline on a sentence encoder (the shipped MiniLM). Sentences are scored by how
close they are to the document's centre (the centroid of all its sentence embeddings), with a mild
preference for early sentences; then maximal marginal relevance picks the top ones without
repeating itself, and they are returned in document order. Headings ("AGREEMENT", "Term of
Agreement."), bare numbers and lead-ins ("ESSI agrees as follows:") are not candidates, and
numbering is stripped from the start of a sentence: in a contract they are the most "central"
lines (they name the document's topics) yet say nothing on their own.

Both engines read at most ``DOCQUEUE_ANALYSIS_MAX_CHARS`` characters of a document (1,000,000, about
330 pages): all of a document up to that, else its first half-budget plus windows spread evenly to
the end (:func:`analysed_sentences`); such a result says ``analysed_chars``. So a 100 MB text costs a
summary what a 330-page one does, in memory and in time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from docqueue.errors import DocumentError
from docqueue.params import SummarizeParams
from workers.engines import Outcome
from workers.engines.chunking import pack, split_sentences
from workers.engines.embedding import SentenceEncoder
from workers.engines.markdown_blocks import HEADING, blocks
from workers.engines.seq2seq import Seq2SeqModel
from workers.engines.windows import bounded_counter, has_text, sample_spans, window_chars

ABSTRACTIVE = "abstractive"
EXTRACTIVE = "extractive"

#: Characters of one document a summary reads by default (``DOCQUEUE_ANALYSIS_MAX_CHARS``).
DEFAULT_MAX_CHARS = 1_000_000

#: Map-reduce rounds are bounded; the output cap below makes each round shrink, this only guards
#: against a model whose output length ignores its configuration.
MAX_ROUNDS = 12


def analysed_sentences(text: str, language: str, max_chars: int, size: int) -> tuple[list[str], int]:
    """The sentences a summary of ``text`` reads, and how many characters they come from.

    All of a document up to ``max_chars``. A longer one is read as its first ``max_chars / 2``
    characters (where most documents state their point) plus windows of ``size`` spread evenly over
    the rest, the last reaching the end, so the middle and the conclusion have a voice too, at a cost
    that does not grow with the document. A sampled window's first and last sentences are cut
    mid-sentence and left out (the last window keeps its last: it is the document's own end).

    Markdown structure is read first (:mod:`workers.engines.markdown_blocks`): code and tables are
    left out, and headings end the sentence before them but are not returned, unless a document has
    nothing else (then its headings are its sentences, so it still gets a summary).
    """
    spans = sample_spans(text, max_chars, size)
    sentences: list[str] = []
    headings: list[str] = []
    for k, (start, end) in enumerate(spans):
        part: list[str] = []
        for block in blocks(text[start:end]):
            if block.kind == HEADING:
                headings.append(block.text)
            else:
                part += split_sentences(block.text, language)
        if k > 0 and len(part) > 2:
            part = part[1:] if end == len(text) else part[1:-1]
        sentences += part
    return sentences or headings, sum(end - start for start, end in spans)


def _coverage(outcome: dict[str, Any], analysed: int, total: int) -> dict[str, Any]:
    """Say how much of a document was read, where it was not all of it."""
    if analysed < total:
        outcome["analysed_chars"] = analysed
    return outcome


def _check_engine(wanted: str | None, mine: str, model: str) -> None:
    """A submission that asks for the other engine than its model runs must hear so, not get a
    silently different kind of summary."""
    if wanted is None or wanted == mine:
        return
    raise DocumentError("invalid_params", f"engine {wanted!r} was requested but model {model!r} runs the "
                        f"{mine} engine; name a {'seq2seq' if wanted == ABSTRACTIVE else 'sentence-embedding'} "
                        f"model with --model")


class AbstractiveSummarizer:
    """Resident engine for ``summarize`` with a seq2seq model."""

    engine = ABSTRACTIVE

    def __init__(self, model: Seq2SeqModel, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.model = model
        self.model_id = model.spec
        self.model_revision = model.revision
        self.runtime = model.runtime
        self.max_chars = max_chars
        self._window = window_chars(model.max_input_tokens)
        self._count = bounded_counter(model.count_tokens, self._window)

    def _map_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Options for intermediate rounds: outputs capped at a third of a chunk, so any two chunk
        summaries fit one chunk and every round strictly reduces the number of chunks."""
        cap = max(8, self.model.chunk_budget // 3)
        default_max = int(self.model.model.generation_config.max_length or cap) - 1
        mapped = dict(options)
        mapped["max_length"] = min(int(options.get("max_length") or default_max), cap)
        mapped["min_length"] = min(int(options.get("min_length") or 0), mapped["max_length"] // 2)
        return mapped

    def _chunks(self, text: str, language: str) -> list[str]:
        return pack(split_sentences(text, language), self._count, self.model.chunk_budget)

    def run(self, texts: Sequence[str], params: SummarizeParams) -> list[Outcome]:
        try:
            _check_engine(params.engine, self.engine, self.model_id)
        except DocumentError as e:
            return [e for _ in texts]
        options = params.generation_options()
        language = params.language
        outcomes: list[Outcome] = [DocumentError("empty_document", "document has no text to summarise")
                                   for _ in texts]
        pending: dict[int, list[str]] = {}
        first_level: dict[int, int] = {}
        analysed: dict[int, int] = {}
        for i, text in enumerate(texts):
            if not has_text(text):
                continue
            sentences, analysed[i] = analysed_sentences(text, language, self.max_chars, self._window)
            chunks = pack(sentences, self._count, self.model.chunk_budget)
            if chunks:
                pending[i] = chunks
                first_level[i] = len(chunks)
        map_options = self._map_options(options)
        rounds = 0
        while pending:
            rounds += 1
            final = [i for i, cs in pending.items() if len(cs) == 1]
            for i, summary in zip(final, self.model.generate([pending[i][0] for i in final], options), strict=True):
                outcomes[i] = _coverage({"summary": summary, "engine": self.engine, "chunks": first_level[i]},
                                        analysed[i], len(texts[i]))
                del pending[i]
            flat = [(i, c) for i, cs in pending.items() for c in cs]
            outputs = self.model.generate([c for _, c in flat], map_options)
            joined: dict[int, list[str]] = {}
            for (i, _), out in zip(flat, outputs, strict=True):
                joined.setdefault(i, []).append(out)
            for i, parts in joined.items():
                chunks = self._chunks(" ".join(p for p in parts if p), language) or [""]
                if rounds >= MAX_ROUNDS:
                    chunks = chunks[:1]
                pending[i] = chunks
        return outcomes


# ---------------------------------------------------------------------------------------- extractive
#: Weight of relevance against redundancy in maximal marginal relevance.
MMR_LAMBDA = 0.7
#: Early sentences get a mild bonus that fades with position: most documents state their point up
#: front. (On SciTLDR dev, ROUGE-L 26.1 without it, 27.2 with 0.1, 27.1 with 0.2. A TextRank-style
#: centrality term added nothing over closeness to the centroid, which it nearly equals for
#: unit-length embeddings, so it was dropped.)
POSITION_WEIGHT = 0.1
DEFAULT_SENTENCES = 3


#: Numbering at the start of a sentence: "2.", "4.1", "(a)", "(iv)", "A.", "B)", "Section 4.1" and
#: "Article IV" before a capital (not "Section 4.1 of this Agreement ..."), possibly several ("5. A.").
_NUMBERING = re.compile(
    r"^(?:(?:\d+(?:\.\d+)*[.)]?|\(\d+\)|\(?[a-z]\)|\(?[ivxlc]{1,5}\)|[A-Z][.)]|"
    r"(?:section|article|paragraph|clause)\s+(?:\d+(?:\.\d+)*|[IVXLC]+)\.?(?=\s+(?-i:[A-Z])))\s+)+",
    re.IGNORECASE)
#: Words a title leaves lowercase ("Term of Agreement", "Duties of Talent and Rights of ESSI").
_MINOR_WORDS = frozenset({"a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to", "with"})
#: Han ideographs, kana and hangul syllables: scripts whose words are not spaced.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
#: A title or heading has at most this many words.
HEADING_WORDS = 12


def strip_numbering(sentence: str) -> str:
    """The sentence without its list or section number ("2. As consideration" -> "As consideration")."""
    stripped = _NUMBERING.sub("", sentence.strip())
    return stripped if any(c.isalpha() for c in stripped) else ""


def is_candidate(sentence: str) -> bool:
    """Whether a (numbering-stripped) sentence can stand in a summary: not a heading (a short line in
    capitals, or in title case), not a lead-in that ends in ":" or "：", not a bare number or name."""
    words = re.findall(r"[^\W\d_][\w'’-]*", _CJK.sub(" ", sentence))
    # Chinese and Japanese write no spaces: every two of their characters count as a word here
    size = len(words) + len(_CJK.findall(sentence)) // 2
    if size < 3 or sentence.rstrip().endswith((":", "：")):
        return False
    if size > HEADING_WORDS:
        return True
    if not words:
        return True  # unspaced script only: it has no capitals that could mark a heading
    if not any(c.islower() for c in sentence):
        return False  # "AGREEMENT", "ARTICLE IV - TERM AND TERMINATION"
    return not all(w[0].isupper() or w.lower() in _MINOR_WORDS for w in words)


def summary_candidates(sentences: Sequence[str]) -> list[str]:
    """The sentences a summary may pick, numbering stripped; every sentence (stripped) when none
    qualifies, so a document of headings still gets a summary."""
    stripped = [strip_numbering(s) for s in sentences]
    kept = [s for s in stripped if s and is_candidate(s)]
    return kept or [s for s in stripped if s] or list(sentences)


def sentence_scores(vectors: torch.Tensor) -> torch.Tensor:
    """Salience of each sentence (higher is more central), from unit-length embeddings.

    Closeness to the centroid costs O(sentences), so a 100-page document is scored whole, in one
    pass, rather than in chunks: nothing about it needs to fit a model window.
    """
    n = vectors.shape[0]
    centroid = torch.nn.functional.normalize(vectors.mean(0), dim=0)
    position = 1.0 / torch.sqrt(torch.arange(1, n + 1, dtype=vectors.dtype))
    return vectors @ centroid + POSITION_WEIGHT * position


def mmr_select(vectors: torch.Tensor, scores: torch.Tensor, k: int, lam: float = MMR_LAMBDA) -> list[int]:
    """Indices of ``k`` sentences by maximal marginal relevance, in document order."""
    chosen: list[int] = []
    candidates = list(range(vectors.shape[0]))
    while candidates and len(chosen) < k:
        redundancy = (vectors[candidates] @ vectors[chosen].T).max(1).values if chosen \
            else torch.zeros(len(candidates))
        value = lam * scores[candidates] - (1 - lam) * redundancy
        best = candidates[int(value.argmax())]
        chosen.append(best)
        candidates.remove(best)
    return sorted(chosen)


class ExtractiveSummarizer:
    """Resident engine for ``summarize --engine extractive`` on a sentence encoder."""

    engine = EXTRACTIVE

    def __init__(self, encoder: SentenceEncoder, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.encoder = encoder
        self.model_id = encoder.ref.spec
        self.model_revision = encoder.revision
        self.runtime = encoder.runtime
        self.max_chars = max_chars

    def run(self, texts: Sequence[str], params: SummarizeParams) -> list[Outcome]:
        try:
            _check_engine(params.engine, self.engine, self.model_id)
        except DocumentError as e:
            return [e for _ in texts]
        k = params.sentences
        language = params.language
        size = window_chars(self.encoder.max_length)
        per_doc: list[list[str]] = []
        analysed: list[int] = []
        for t in texts:
            sentences, n = analysed_sentences(t, language, self.max_chars, size) if has_text(t) else ([], 0)
            per_doc.append(summary_candidates(sentences) if sentences else [])
            analysed.append(n)
        flat = [s for sents in per_doc for s in sents]
        vectors = self.encoder.encode(flat) if flat else torch.empty(0)
        outcomes: list[Outcome] = []
        offset = 0
        for sents, n, text in zip(per_doc, analysed, texts, strict=True):
            if not sents:
                outcomes.append(DocumentError("empty_document", "document has no text to summarise"))
                continue
            doc_vectors = vectors[offset : offset + len(sents)]
            offset += len(sents)
            chosen = mmr_select(doc_vectors, sentence_scores(doc_vectors), k)
            # the whole document is scored in one pass (see sentence_scores): one chunk
            outcomes.append(_coverage({"summary": " ".join(sents[i] for i in chosen), "engine": self.engine,
                                       "chunks": 1}, n, len(text)))
        return outcomes
