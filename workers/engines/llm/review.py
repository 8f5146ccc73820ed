"""review with a causal LM: JSON held to a schema by constrained decoding, quotes found in the text.

Each window of a contract (windows sized to the model's context, cut between sentences, as for the
llm summarizer; every window is read) is answered with JSON that the decoding holds to
``review_answer.answer_schema``: clauses as (category, quote), the key fields, risks as (flag,
severity, quote). The engine then finds every quote in the contract (``quotes.Located``): a quote
found becomes a clause (or a risk's clause) with its offsets, exactly as the prototype engine reports
them (``text == document[start:end]``); a quote not found is dropped and counted in
``unverified_quotes``. Windows' answers are merged: clauses and risks de-duplicated by span, each
field from the first window that states it, parties united. An answer cut by the new-token limit
keeps its complete items (``quotes.parse_answer``) and the result's ``llm.finish_reason`` says
``length``. Clauses carry ``score`` 1.0: the model asserted them; nothing is calibrated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from docqueue.contract_categories import CUAD_CATEGORIES
from docqueue.errors import DocumentError
from docqueue.params import ReviewParams
from workers.engines import Outcome
from workers.engines.llm.common import PromptedEngine, Usage, deadline, max_new_tokens, window_budget
from workers.engines.llm.constrained import json_schema_constraint
from workers.engines.llm.quotes import Located, parse_answer, window_starts
from workers.engines.llm.review_answer import FIELDS, RISK_FLAGS, answer_schema
from workers.engines.windows import has_text

KIND = "llm"
TEMPLATE = "review"
#: New tokens of one window's answer unless the submission says (within DOCQUEUE_LLM_MAX_NEW_TOKENS).
ANSWER_TOKENS = 1024
#: What a clause the model quoted scores: it is asserted, not calibrated.
ASSERTED = 1.0


def _date(value: Any) -> str | None:
    """An ISO date the schema's pattern let through, if it is a real date ("2021-02-30" is not)."""
    if not isinstance(value, str):
        return None
    if value == "perpetual":
        return value
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        return None


class Review:
    """One contract's answers merged, window by window."""

    def __init__(self, text: str, categories: Sequence[str]) -> None:
        self.located = Located(text)
        self.wanted = set(categories)
        self.clauses: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.risks: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.fields: dict[str, Any] = {name: None for name in FIELDS if name != "parties"}
        self.parties: list[str] = []
        self.unverified = 0

    def add(self, answer: Any, near: int) -> None:
        """Merge one window's answer (parsed JSON; items a cut answer left incomplete are skipped)."""
        if not isinstance(answer, dict):
            return
        text = self.located.text
        for item in answer.get("clauses") or []:
            if not isinstance(item, dict) or item.get("category") not in self.wanted or "quote" not in item:
                continue
            span = self.located.find(str(item["quote"]), near)
            if span is None:
                self.unverified += 1
                continue
            self.clauses.setdefault((item["category"], span.start, span.end), {
                "category": item["category"], "start": span.start, "end": span.end,
                "text": text[span.start:span.end], "score": ASSERTED})
        for item in answer.get("risks") or []:
            if not isinstance(item, dict) or item.get("flag") not in RISK_FLAGS or "quote" not in item:
                continue
            span = self.located.find(str(item["quote"]), near)
            if span is None:
                self.unverified += 1
                continue
            quoted = text[span.start:span.end]
            self.risks.setdefault((item["flag"], span.start, span.end), {
                "flag": item["flag"], "severity": item.get("severity") or "medium", "clause_start": span.start,
                "clause_end": span.end, "rationale": f"the model flagged this clause: \"{quoted[:300]}\""})
        fields = answer.get("fields")
        if not isinstance(fields, dict):
            return
        for name in self.fields:
            value = fields.get(name)
            if name.endswith("_date"):
                value = _date(value)
            if self.fields[name] is None and isinstance(value, str) and value.strip():
                self.fields[name] = value.strip()
        for party in fields.get("parties") or []:
            if isinstance(party, str) and party.strip() and party.strip() not in self.parties:
                self.parties.append(party.strip())

    def result(self) -> dict[str, Any]:
        return {"clauses": sorted(self.clauses.values(), key=lambda c: (c["start"], c["end"], c["category"])),
                "fields": {"parties": [{"name": p} for p in self.parties], **self.fields},
                "risks": sorted(self.risks.values(), key=lambda r: (r["clause_start"], r["flag"])),
                "unverified_quotes": self.unverified}


class LLMReviewer(PromptedEngine):
    """Resident engine for ``review`` with a causal LM."""

    engine = KIND

    def run(self, texts: Sequence[str], params: ReviewParams) -> list[Outcome]:
        categories = list(params.categories or CUAD_CATEGORIES)
        fields = {"categories": "; ".join(categories), "flags": ", ".join(RISK_FLAGS)}
        try:
            if params.engine not in (None, KIND):
                raise DocumentError("wrong_model_kind", f"model {self.model_id!r} is a causal LM: the llm engine runs "
                                    f"it, not {params.engine!r}")
            new_tokens = max_new_tokens(params.max_new_tokens, "review", self.limits, ANSWER_TOKENS)
            budget = window_budget(self.model, self.prompter.overhead(TEMPLATE, **fields), new_tokens)
            constraint = json_schema_constraint(self.model, answer_schema(categories))
        except DocumentError as e:
            return [e for _ in texts]
        outcomes: list[Outcome] = [DocumentError("empty_document", "document has no text to review") for _ in texts]
        jobs: list[tuple[int, int]] = []  # (document, window start offset)
        prompts: list[list[int]] = []
        windows: dict[int, int] = {}
        for i, text in enumerate(texts):
            if not has_text(text):
                continue
            parts = self.prompter.windows(text, budget)
            windows[i] = len(parts)
            for part, start in zip(parts, window_starts(text, parts), strict=True):
                jobs.append((i, start))
                prompts.append(self.prompter.tokens(TEMPLATE, document=part, **fields))
        try:
            generated = self.model.generate(prompts, new_tokens, deadline(self.limits), constraint=constraint)
        except DocumentError as e:  # the time limit: every document of the batch fails with it
            return [e if i in windows else o for i, o in enumerate(outcomes)]
        reviews = {i: Review(texts[i], categories) for i in windows}
        usage: dict[int, Usage] = {i: self.prompter.usage(TEMPLATE, do_sample=False, num_beams=1,
                                                          max_new_tokens=new_tokens, constrained="json_schema")
                                   for i in windows}
        for (i, start), g in zip(jobs, generated, strict=True):
            answer, _complete = parse_answer(g.text)
            reviews[i].add(answer, start)
            usage[i].add(g)
            if g.finish_reason == "length":
                usage[i].finish_reason = "length"
        for i, review in reviews.items():
            outcomes[i] = {**review.result(), "engine": KIND, "chunks": windows[i],
                           "model": {"id": self.model_id, "revision": self.model_revision, "scorer": KIND},
                           "llm": usage[i].as_json(self.model)}
        return outcomes
