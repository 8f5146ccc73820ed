"""Risk flags a reviewer looks at first, each tied to the clause that raises it.

A flag needs two things: the scorer found a clause of the matching CUAD category, and the clause
itself says the words that make it a risk (an "exclusive" right, a "change of control"), which the
rationale quotes so a person can check it against the highlighted span. Uncapped liability is the
exception: it is the *absence* of a cap (or a cap that is explicitly carved out).

A cue that the clause negates ("a non-exclusive distributor", "shall not be exclusive", "no automatic
renewal") says the opposite of the risk, so it does not count; the rule looks on for another cue.
Non-compete is the exception: its risk is worded as a negation ("non-compete", "shall not compete").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Wording that limits liability in CUAD's sense of "Cap on Liability": an amount cap, an exclusion
#: of indirect/consequential damages, an exclusive remedy, a time bar on claims.
_CAP = re.compile(
    r"\b(?:in\s+no\s+event|under\s+no\s+circumstances?)\b[^.]{0,200}?\bliab"
    r"|\b(?:neither|no)\s+party\s+(?:hereto\s+|to\s+this\s+agreement\s+)?(?:shall|will)\s+(?:not\s+)?be\s+liable"
    r"|\b(?:shall|will)\s+not\s+be\s+liable\b[^.]{0,80}\b(?:special|indirect|incidental|consequential|punitive|"
    r"exemplary|lost\s+profits)"
    r"|\bliabilit(?:y|ies)\b[^.]{0,200}?\b(?:shall|will)\s+(?:not|in\s+no\s+event)\s+exceed"
    r"|\bliabilit(?:y|ies)\b[^.]{0,120}\b(?:is|are|be)\s+(?:further\s+)?limited\s+to"
    r"|\b(?:maximum|aggregate|total|entire)\s+(?:aggregate\s+|cumulative\s+)?liability\b"
    r"|\b(?:sole|exclusive)\s+(?:and\s+exclusive\s+)?remedy\b"
    r"|\bmay\s+be\s+brought\b[^.]{0,60}\bmore\s+than\b",
    re.IGNORECASE)
#: Wording that takes some liability back out of a cap (CUAD's "Uncapped Liability").
_CARVE_OUT = re.compile(
    r"\b(?:except|excluding|other\s+than|save)\b[^.]{0,200}?\b(?:indemnif\w*|confidential\w*|infring\w*|"
    r"gross(?:ly)?\s+negligen\w*|wil(?:l)?ful\w*|fraud\w*|section\s+\d+|article\s+\d+|breach\s+of)"
    r"|\b(?:shall|will)\s+not\s+apply\s+to\b|\bunlimited\s+liability\b|\bwithout\s+limit(?:ation)?\s+(?:of|as\s+to)"
    r"\s+(?:amount|liability)",
    re.IGNORECASE)


@dataclass(frozen=True)
class RiskRule:
    """A risk raised by a clause of ``category`` whose text matches ``cue``."""

    flag: str
    category: str
    severity: str
    cue: re.Pattern[str]
    why: str
    #: Whether a negation right before the cue, or a sentence that denies it ("Nothing in this
    #: Agreement grants ... any exclusive right"), undoes it (see the module docstring).
    negatable: bool = True
    #: Wording in the cue's sentence that makes it something else ("terminated at any time upon the
    #: mutual written agreement of the parties" is no termination for convenience).
    unless: re.Pattern[str] | None = None

    def find(self, text: str) -> re.Match[str] | None:
        """The first cue in ``text`` that the text does not negate."""
        for cue in self.cue.finditer(text):
            start = _sentence_start(text, cue.start())
            if self.negatable and (_NEGATION.search(text, max(0, cue.start() - 60), cue.start())
                                   or _DENIAL.match(text, start)):
                continue
            if self.unless is not None and self.unless.search(text, start, _sentence_end(text, cue.end())):
                continue
            return cue
        return None


def _sentence_start(text: str, pos: int) -> int:
    cut = max(text.rfind(". ", 0, pos), text.rfind("; ", 0, pos), text.rfind("\n", 0, pos))
    return 0 if cut < 0 else cut + 1


def _sentence_end(text: str, pos: int) -> int:
    ends = [i for i in (text.find(". ", pos), text.find("; ", pos), text.find("\n", pos)) if i >= 0]
    return min(ends) if ends else len(text)


#: A sentence that denies what follows: "Nothing in this Agreement grants ...", "Nothing contained
#: herein shall be construed as ...", "No provision of this Agreement ...".
_DENIAL = re.compile(r"\s*(?:\(?\w{1,4}[.)]\s*)*(?:nothing\b|no\s+(?:provision|term|part)\s+of\b)", re.IGNORECASE)


#: Wording right before a cue that turns it around: "non-exclusive", "nonexclusive" (which the cues'
#: word boundaries never match), "not exclusive", "shall not be exclusive", "no exclusivity",
#: "not be deemed an exclusive", "without any exclusivity".
_NEGATION = re.compile(
    r"(?:\bnon[-\s]?|\b(?:not|no|nor|never|neither|without)\s+(?:(?:be|been|being|is|are|an?|any|the|deemed|"
    r"considered|construed\s+as)\s+){0,3})$",
    re.IGNORECASE)


RULES: tuple[RiskRule, ...] = (
    RiskRule("auto_renewal", "Renewal Term", "medium",
             re.compile(r"\bautomatic(?:ally)?\b|\bevergreen\b|\bshall\s+(?:be\s+)?renew|\bunless\b[^.]{0,80}\bnotice",
                        re.IGNORECASE),
             "the term renews unless someone acts in time"),
    RiskRule("termination_for_convenience", "Termination for Convenience", "high",
             re.compile(r"\b(?:for\s+convenience|without\s+cause|for\s+any\s+reason|at\s+any\s+time|for\s+no\s+reason|"
                        r"in\s+its\s+(?:sole\s+)?discretion)\b|\bupon\s+(?:\w+\s+){0,3}(?:days?|months?)['’]?\s+"
                        r"(?:prior\s+)?(?:written\s+)?notice", re.IGNORECASE),
             "a party may end the contract without a breach; check which party holds this right",
             unless=re.compile(r"\bmutual(?:ly)?\b|\bagreement\s+of\s+(?:both|the)\s+parties|\bboth\s+parties\s+agree",
                               re.IGNORECASE)),
    RiskRule("exclusivity", "Exclusivity", "medium",
             re.compile(r"\bexclusiv\w*|\bsole\s+(?:and\s+exclusive\s+)?(?:source|supplier|provider|distributor)|"
                        r"\bonly\s+from\b|\bshall\s+not\b[^.]{0,80}\b(?:any\s+other|third\s+part)", re.IGNORECASE),
             "one side is bound to deal only with the other"),
    RiskRule("non_compete", "Non-Compete", "high",
             re.compile(r"\bcompet\w*|\bsimilar\s+(?:products|services|business)|\bshall\s+not\b[^.]{0,80}"
                        r"\b(?:engage|develop|market|sell|manufacture)", re.IGNORECASE),
             "restricts competing business", negatable=False),
    RiskRule("change_of_control", "Change of Control", "medium",
             re.compile(r"\bchange\s+(?:of|in)\s+(?:control|ownership)|\bmerger\b|\bmerge\b|\bacqui(?:re|sition)|"
                        r"\bconsolidat\w*|\bsale\s+of\s+(?:all|substantially)|\bvoting\b|\bcontrol\b", re.IGNORECASE),
             "a merger, acquisition or change of control gives rights (termination, consent)"),
    RiskRule("ip_assignment", "IP Ownership Assignment", "high",
             re.compile(r"\bassign\w*|\btransfer\w*|\bwork(?:s)?\s+made\s+for\s+hire|\bsole\s+(?:and\s+exclusive\s+)?"
                        r"propert|\bshall\s+(?:be\s+)?own|\bvest", re.IGNORECASE),
             "intellectual property passes to the other party"),
    RiskRule("most_favoured_nation", "Most Favored Nation", "medium",
             re.compile(r"\bmost\s+favou?red|\bno\s+less\s+favou?rable|\bbetter\s+(?:terms|price)|\blowest\s+price|"
                        r"\bmore\s+favou?rable|\bequal\s+to\s+or\s+(?:better|lower)", re.IGNORECASE),
             "prices or terms must match the best given to anyone else"),
    RiskRule("audit_rights", "Audit Rights", "low",
             re.compile(r"\baudit\w*|\binspect\w*|\bexamin\w*|\b(?:access\s+to|make\s+available|review|copy|copies)\b"
                        r"[^.]{0,80}\b(?:books|records)\b", re.IGNORECASE),
             "the other party may audit books, records or premises"),
    RiskRule("liquidated_damages", "Liquidated Damages", "high",
             re.compile(r"\bliquidated\s+damages|\bpenalt(?:y|ies)\b|\btermination\s+fee|\bbreak(?:-|\s)?up\s+fee|"
                        r"\bshall\s+pay\b[^.]{0,120}\b(?:per\s+day|for\s+each\s+day)", re.IGNORECASE),
             "a fixed sum is owed on breach or termination"),
)


def _quote(text: str, start: int, end: int, limit: int = 200) -> str:
    snippet = re.sub(r"\s+", " ", text[start:end]).strip()
    return snippet if len(snippet) <= limit else snippet[: limit - 1] + "…"


def _risk(flag: str, severity: str, clause: Mapping[str, Any] | None, rationale: str) -> dict[str, Any]:
    return {"flag": flag, "severity": severity,
            "clause_start": clause["start"] if clause else None, "clause_end": clause["end"] if clause else None,
            "rationale": rationale}


def _sentence_at(spans: Sequence[tuple[int, int]], pos: int, text: str) -> tuple[int, int]:
    """The shortest candidate span holding ``pos`` (a sentence), else the line around it."""
    holding = [s for s in spans if s[0] <= pos < s[1]]
    if holding:
        return min(holding, key=lambda s: s[1] - s[0])
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, len(text) if end == -1 else end


def _liability_risk(text: str, by_category: Mapping[str, Sequence[Mapping[str, Any]]],
                    spans: Sequence[tuple[int, int]]) -> dict[str, Any] | None:
    """uncapped_liability: no limitation of liability anywhere (high), or a limitation that carves
    some liability back out, e.g. "except for claims under section 6" (medium)."""
    candidates = [(int(c["start"]), int(c["end"])) for c in by_category.get("Uncapped Liability") or []]
    candidates += [(int(c["start"]), int(c["end"])) for c in by_category.get("Cap on Liability") or []]
    caps = [_sentence_at(spans, m.start(), text) for m in _CAP.finditer(text)]
    for start, end in [*candidates, *caps]:
        carve = _CARVE_OUT.search(text, start, end)
        if carve and _CAP.search(text, start, end):
            clause = {"start": start, "end": end}
            return _risk("uncapped_liability", "medium", clause,
                         f"liability is limited, but \"{_quote(text, carve.start(), carve.end(), 120)}\" is carved "
                         f"out of the limit: \"{_quote(text, start, end)}\"")
    if caps:
        return None
    return _risk("uncapped_liability", "high", None,
                 "no limitation of liability was found (no cap amount, no exclusion of indirect or consequential "
                 "damages, no exclusive remedy): neither party's liability is capped")


def assess(text: str, clauses: Sequence[Mapping[str, Any]], spans: Sequence[tuple[int, int]] = ()
           ) -> list[dict[str, Any]]:
    """Risk flags for a contract, given its scored clauses (``category``, ``start``, ``end``, ``text``,
    ``score``) and its candidate spans (to quote whole sentences)."""
    by_category: dict[str, list[Mapping[str, Any]]] = {}
    for clause in sorted(clauses, key=lambda c: -float(c["score"])):
        by_category.setdefault(str(clause["category"]), []).append(clause)
    risks = []
    liability = _liability_risk(text, by_category, spans)
    if liability:
        risks.append(liability)
    for rule in RULES:
        for clause in by_category.get(rule.category, []):
            cue = rule.find(clause["text"])
            if cue:
                risks.append(_risk(rule.flag, rule.severity, clause,
                                   f"{rule.why}: the clause says \"{cue.group(0)}\" — "
                                   f"\"{_quote(text, clause['start'], clause['end'])}\" "
                                   f"(classified {rule.category}, score {float(clause['score']):.2f})"))
                break
    return risks
