"""What an LLM is allowed to answer when it reviews one window of a contract: a JSON Schema, held by
constrained decoding (``workers.engines.llm.constrained``), so even a model with random weights
answers JSON of this shape.

The model quotes, it never counts: clauses and risks carry a ``quote`` of the window and the engine
finds the offsets (``workers.engines.llm.quotes``). Numbers are left out of the answer on purpose (a
model's offsets would be guesses). Every string and array is bounded, so an answer ends; dates and
durations are held to their ISO 8601 forms by patterns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workers.engines.llm.quotes import MIN_QUOTE_CHARS

#: The risk flags an answer may raise (the prototype engine's, docs/tasks/review.md).
RISK_FLAGS = ("uncapped_liability", "auto_renewal", "termination_for_convenience", "exclusivity", "non_compete",
              "change_of_control", "ip_assignment", "most_favoured_nation", "audit_rights", "liquidated_damages")
SEVERITIES = ("low", "medium", "high")
#: Most characters of one quote: a clause, not a page.
MAX_QUOTE_CHARS = 400
#: Most clauses one window's answer may list, per category asked (and in all).
CLAUSES_PER_CATEGORY = 2
MAX_CLAUSES = 24
MAX_PARTIES = 4
MAX_NAME_CHARS = 80
DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DURATION = r"^P[0-9]{1,3}[DWMY]$"
FIELDS = ("parties", "agreement_date", "effective_date", "expiration_date", "governing_law", "renewal_term",
          "notice_period_to_terminate_renewal")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def answer_schema(categories: Sequence[str]) -> dict[str, Any]:
    """The JSON Schema of one window's answer, for the categories asked."""
    quote = {"type": "string", "minLength": MIN_QUOTE_CHARS, "maxLength": MAX_QUOTE_CHARS}
    date = {"type": "string", "pattern": DATE}
    duration = {"type": "string", "pattern": DURATION}
    return {
        "type": "object", "additionalProperties": False, "required": ["clauses", "fields", "risks"],
        "properties": {
            "clauses": {"type": "array", "maxItems": min(MAX_CLAUSES, CLAUSES_PER_CATEGORY * len(categories)),
                        "items": {"type": "object", "additionalProperties": False, "required": ["category", "quote"],
                                  "properties": {"category": {"enum": list(categories)}, "quote": quote}}},
            "fields": {"type": "object", "additionalProperties": False, "required": list(FIELDS),
                       "properties": {
                           "parties": {"type": "array", "maxItems": MAX_PARTIES,
                                       "items": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS}},
                           "agreement_date": _nullable(date),
                           "effective_date": _nullable(date),
                           "expiration_date": {"anyOf": [date, {"const": "perpetual"}, {"type": "null"}]},
                           "governing_law": _nullable({"type": "string", "minLength": 1,
                                                       "maxLength": MAX_NAME_CHARS}),
                           "renewal_term": _nullable(duration),
                           "notice_period_to_terminate_renewal": _nullable(duration)}},
            "risks": {"type": "array", "maxItems": len(RISK_FLAGS),
                      "items": {"type": "object", "additionalProperties": False,
                                "required": ["flag", "severity", "quote"],
                                "properties": {"flag": {"enum": list(RISK_FLAGS)},
                                               "severity": {"enum": list(SEVERITIES)}, "quote": quote}}},
        },
    }
