"""The ``review`` engine: contract text -> clauses (CUAD categories, offsets, scores), key fields,
risk flags.

One batch of contracts is segmented, all segments are embedded in one call (the encoder packs them
by token budget, so a 100-page contract costs memory in proportion to a batch, not to its length),
then each contract is scored and assembled on its own: an error in one contract's rules is that
contract's error only.

A contract is reviewed up to ``DOCQUEUE_ANALYSIS_MAX_CHARS`` characters from its start (1,000,000,
about 330 pages; cut at whitespace); a longer one's result says ``analysed_chars``. Its start, not a
sample: offsets, the preamble rules and "nowhere in the contract" risks need one contiguous text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from docqueue.errors import DocumentError
from docqueue.params import ReviewParams
from workers.engines import Outcome
from workers.engines.review.categories import CATEGORIES
from workers.engines.review.fields import agreement_date, effective_date, extract_fields, parties, preamble_span
from workers.engines.review.risks import assess
from workers.engines.review.scorer import SegmentInfo
from workers.engines.review.segment import Segment, segment
from workers.engines.windows import bounded_prefix, has_text

log = logging.getLogger(__name__)

#: Characters of a contract reviewed by default (``DOCQUEUE_ANALYSIS_MAX_CHARS``): about 330 pages.
DEFAULT_MAX_CHARS = 1_000_000
#: Score given to a span that a rule found (title line, preamble date); rules are checked in
#: ``ops/eval/cuad.py`` like everything else.
RULE_SCORE = 0.9
#: A category's best clause feeds the field rules when it scores at least this share of the threshold.
FIELD_SOURCE_RATIO = 0.5
#: Contracts with more candidate segments than this (about 60 pages) compose paragraph vectors.
COMPOSE_ABOVE_SEGMENTS = 1500
#: Risk rules look at clauses scoring at least this share of their category's threshold.
RISK_SOURCE_RATIO = 0.5
#: Two clauses of one category overlapping more than this share of the shorter are duplicates: the
#: better keeps its score, the other's is multiplied by ``DUPLICATE_DISCOUNT`` (soft non-maximum
#: suppression), so it ranks below the clause it repeats and rarely passes a threshold, but is not lost
#: to a ranked list (``--min-score``): a section and the one sentence of it that matters overlap, and
#: either may be the clause a reader wants.
MAX_OVERLAP = 0.5
DUPLICATE_DISCOUNT = 0.5
#: A candidate this short, with only whitespace between it and a better clause of its category, is that
#: clause's heading.
HEADING_CHARS = 80
#: Scores of candidates that cannot be what a category asks for are multiplied by this: a "Parties"
#: candidate that names none of the parties the preamble introduces (by name or defined term) is
#: about the parties ("the parties acknowledge ..."), not a statement of who they are; and a
#: contract has one title, so when the title rule finds it, the scorer's other "Document Name"
#: candidates are unlikely.
SECONDARY_DISCOUNT = 0.1
_PARTIES = CATEGORIES.index("Parties")
_DOCUMENT_NAME = CATEGORIES.index("Document Name")
_TITLE = re.compile(r"\b(?:agreement|contract|addendum|amendment|licen[cs]e|lease|plan|deed|memorandum)\b",
                    re.IGNORECASE)


class Scorer(Protocol):
    """What the engine needs from a clause scorer (prototype or fine-tuned classifier)."""

    kind: str
    #: What runs the model (a result's provenance), e.g. ``torch-cpu-bf16``.
    runtime: str
    #: Whether a paragraph's vector may be the mean of its sentences' (embeddings) or must be its own.
    composes_paragraphs: bool

    def embed(self, texts: Sequence[str]) -> Any: ...

    def probabilities(self, vectors: Any, infos: Sequence[SegmentInfo]) -> np.ndarray: ...

    @property
    def thresholds(self) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


def embed_segments(scorer: Scorer, docs: Sequence[tuple[str, Sequence[Segment]]]) -> list[Any]:
    """Every segment's vector, per contract, from one embedding call for the whole batch.

    In a very long contract a paragraph's vector is the normalised mean of its sentences' vectors,
    so each character is encoded about once rather than twice (a 130-page contract costs about half
    as much). Shorter contracts embed paragraphs on their own, which scores better (CUAD dev AUPR
    48.4 against 47.1 when composed).
    """
    compose = [scorer.composes_paragraphs and len(segs) > COMPOSE_ABOVE_SEGMENTS for _, segs in docs]
    wanted: list[str] = []
    for (text, segs), comp in zip(docs, compose, strict=True):
        wanted += [text[s.start : s.end] for s in segs if not (comp and s.kind == "paragraph")]
    flat = scorer.embed(wanted)
    out: list[Any] = []
    offset = 0
    for (_text, segs), comp in zip(docs, compose, strict=True):
        if not comp:
            out.append(flat[offset : offset + len(segs)])
            offset += len(segs)
            continue
        own = [i for i, s in enumerate(segs) if s.kind != "paragraph"]
        vectors = np.zeros((len(segs), flat.shape[1]), dtype=np.float32)
        vectors[own] = flat[offset : offset + len(own)]
        offset += len(own)
        sentences = [i for i in own if segs[i].kind == "sentence"]
        for i, seg in enumerate(segs):
            if seg.kind == "paragraph":
                inside = [j for j in sentences if seg.start <= segs[j].start and segs[j].end <= seg.end]
                mean = vectors[inside].mean(axis=0) if inside else np.zeros(flat.shape[1], dtype=np.float32)
                vectors[i] = mean / max(float(np.linalg.norm(mean)), 1e-6)
        out.append(vectors)
    return out


_KIND = r"(?:AGREEMENT|CONTRACT|ADDENDUM|AMENDMENT|LICEN[CS]E|LEASE|PLAN|DEED|MEMORANDUM)"
#: A title inside running text: "EXHIBIT 10.8 DISTRIBUTOR AGREEMENT Tripath ..." or "... Supply Agreement — ..."
_TITLE_IN_TEXT = re.compile(
    rf"(?<![A-Za-z])(?:(?!THIS\b)[A-Z][A-Z&'/,-]*[ \t]+(?:-[ \t]+)?){{0,6}}{_KIND}\b"
    rf"|(?<![A-Za-z])(?!(?:This|The)\b)(?:[A-Z][a-z]+[ \t]+(?:and[ \t]+|-[ \t]+)?){{1,5}}{_KIND.title()}\b")


def _title_span(text: str) -> tuple[int, int] | None:
    """The contract's title: an early short line that names a kind of agreement, else the first
    capitalised "... Agreement" phrase near the top."""
    pos = 0
    for line in text[:1500].splitlines(keepends=True):
        words = line.split()
        if 0 < len(words) <= 12 and _TITLE.search(line) and not line.strip().lower().startswith(("this ", "the ")):
            start = pos + (len(line) - len(line.lstrip()))
            return start, start + len(line.strip())
        pos += len(line)
    m = _TITLE_IN_TEXT.search(text, 0, min(len(text), 1500))
    return (m.start(), m.end()) if m else None


def rule_candidates(text: str) -> list[tuple[str, int, int]]:
    """(category, start, end) spans that rules find: the title, the preamble naming the parties, the
    agreement and effective dates."""
    out = []
    title = _title_span(text)
    if title:
        out.append(("Document Name", *title))
    preamble = preamble_span(text)
    if preamble:
        out.append(("Parties", *preamble))
    agreement = agreement_date(text)
    if agreement:
        out.append(("Agreement Date", agreement.start, agreement.end))
    effective = effective_date(text, agreement)
    if effective:
        out.append(("Effective Date", effective.start, effective.end))
    return out


def _squeezed(s: str) -> str:
    return " ".join(s.lower().split())


def discount_secondary(text: str, segments: Sequence[Segment], probs: np.ndarray,
                       rules: Sequence[tuple[str, int, int]]) -> np.ndarray:
    """``probs`` with ``SECONDARY_DISCOUNT`` applied to Parties candidates naming none of the
    preamble's parties (when it names any) and to every Document Name candidate when a rule found the
    title."""
    out = probs.copy()
    if any(cat == "Document Name" for cat, _, _ in rules):
        out[:, _DOCUMENT_NAME] *= SECONDARY_DISCOUNT
    terms = {_squeezed(t) for p in parties(text) for t in (p["name"], p.get("defined_as", "")) if len(t.strip()) >= 2}
    if terms:
        for i, seg in enumerate(segments):
            if out[i, _PARTIES] > 0 and not any(t in _squeezed(text[seg.start : seg.end]) for t in terms):
                out[i, _PARTIES] *= SECONDARY_DISCOUNT
    return out


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = min(a[1], b[1]) - max(a[0], b[0])
    return max(inter, 0) / max(1, min(a[1] - a[0], b[1] - b[0]))


def _repeats(span: tuple[int, int], kept: tuple[int, int], text: str) -> bool:
    """Whether ``span`` says again what ``kept`` says: they overlap, or ``span`` is a short heading
    right before or after it ("3. Governing Law." above its own paragraph)."""
    if _overlap(span, kept) > MAX_OVERLAP:
        return True
    if span[1] - span[0] > HEADING_CHARS:
        return False
    gap = text[span[1] : kept[0]] if span[1] <= kept[0] else text[kept[1] : span[0]]
    return not gap.strip()


def select_clauses(text: str, segments: Sequence[Segment], probs: np.ndarray, thresholds: np.ndarray,
                   wanted: Sequence[int], rules: Sequence[tuple[str, int, int]], ranked: bool = False
                   ) -> list[dict[str, Any]]:
    """Clauses at or above each category's threshold, in text order, each span reported once: a
    clause that repeats a better one of its category (:func:`_repeats`) is left out, except in a
    ranked list (``ranked``: ``--min-score`` given, and the CUAD evaluation), where its score is
    discounted (``DUPLICATE_DISCOUNT``) before the threshold instead."""
    clauses = []
    for c in wanted:
        category = CATEGORIES[c]
        scored = [(float(probs[i, c]), seg.start, seg.end) for i, seg in enumerate(segments) if probs[i, c] > 0]
        scored += [(RULE_SCORE, s, e) for cat, s, e in rules if cat == category]
        kept: list[tuple[float, int, int]] = []
        duplicates: list[tuple[float, int, int]] = []
        for score, s, e in sorted(scored, key=lambda x: -x[0]):
            if not any(_repeats((s, e), (ks, ke), text) for _, ks, ke in kept):
                kept.append((score, s, e))
            elif ranked:
                duplicates.append((score * DUPLICATE_DISCOUNT, s, e))
        clauses += [{"category": category, "start": s, "end": e, "text": text[s:e], "score": round(score, 4)}
                    for score, s, e in kept + duplicates if score > 0 and score >= thresholds[c]]
    return sorted(clauses, key=lambda x: (x["start"], x["end"], x["category"]))


def wanted_categories(params: ReviewParams) -> list[int]:
    """Indices of the categories to report clauses for (all without a filter)."""
    if params.categories is None:
        return list(range(len(CATEGORIES)))
    return [CATEGORIES.index(c) for c in params.categories]


class ContractReviewer:
    """Resident engine for the ``review`` task."""

    def __init__(self, scorer: Scorer, model_id: str, model_revision: str | None,
                 max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.scorer = scorer
        self.model_id = model_id
        self.model_revision = model_revision
        self.runtime = scorer.runtime
        self.max_chars = max_chars

    def run(self, texts: Sequence[str], params: ReviewParams) -> list[Outcome]:
        wanted, min_score = wanted_categories(params), params.min_score
        outcomes: list[Outcome] = [DocumentError("empty_document", "document has no text to review") for _ in texts]
        # a contract is reviewed from its start, up to max_chars (cut at whitespace): offsets, the
        # preamble rules and "nowhere in the contract" risks need one contiguous text, not samples
        full = texts
        texts = [bounded_prefix(t, self.max_chars) for t in texts]
        segmented = {i: segment(t) for i, t in enumerate(texts) if has_text(t)}
        for i, segs in segmented.items():
            if not segs:
                outcomes[i] = DocumentError("no_clauses", "no sentence of 8 characters or more to review")
        live = [i for i, segs in segmented.items() if segs]
        embedded = embed_segments(self.scorer, [(texts[i], segmented[i]) for i in live])
        for i, part in zip(live, embedded, strict=True):
            segs = segmented[i]
            try:
                result = self.review_one(texts[i], segs, part, wanted, min_score)
                if len(texts[i]) < len(full[i]):
                    result["analysed_chars"] = len(texts[i])
                outcomes[i] = result
            except Exception as e:  # a rule tripping on one odd contract fails that contract only
                log.exception("review of document %d failed", i)
                outcomes[i] = DocumentError("review_failed", f"{type(e).__name__}: {e}")
        return outcomes

    def review_one(self, text: str, segs: Sequence[Segment], vectors: Any, wanted: Sequence[int],
                   min_score: float | None) -> dict[str, Any]:
        infos = [SegmentInfo(s.kind, s.end - s.start) for s in segs]
        rules = rule_candidates(text)
        probs = discount_secondary(text, segs, self.scorer.probabilities(vectors, infos), rules)
        thresholds = self.scorer.thresholds
        cut = np.full(len(CATEGORIES), min_score, dtype=np.float32) if min_score is not None else thresholds
        clauses = select_clauses(text, segs, probs, cut, wanted, rules, ranked=min_score is not None)
        # risks need the clause and its cue words both, so they may rest on clauses scoring below
        # the reporting threshold
        risk_sources = select_clauses(text, segs, probs, thresholds * RISK_SOURCE_RATIO, range(len(CATEGORIES)),
                                      rules, ranked=True)
        best: dict[str, str | None] = {}
        for c, category in enumerate(CATEGORIES):
            top = int(np.argmax(probs[:, c])) if len(segs) else -1
            if top >= 0 and probs[top, c] >= FIELD_SOURCE_RATIO * thresholds[c]:
                best[category] = text[segs[top].start : segs[top].end]
        risks = assess(text, risk_sources, [(s.start, s.end) for s in segs])
        return {"clauses": clauses, "fields": extract_fields(text, best), "risks": risks,
                "model": {"id": self.model_id, "revision": self.model_revision, **self.scorer.describe()}}
