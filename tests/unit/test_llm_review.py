"""review with a causal LM (engine ``llm``) on tiny random models built at test time.

With random weights only the constraints make an answer valid JSON of the review schema, so that is
what is tested: every answer of a batch valid against the schema (and none without the constraint),
quotes found in the text or dropped and counted, long contracts read in windows, provenance and
limits, and the model-kind table that now lets a causal LM review.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import pytest
import torch

from docqueue import contract
from docqueue.errors import DocumentError
from docqueue.model_kinds import CAUSAL_LM, ENCODER, wrong_kind_reason
from docqueue.models_catalog import kind_problem
from docqueue.names import REVIEW
from docqueue.params import ReviewParams
from docqueue.settings import Settings
from tests.helpers import prose
from tests.tiny_llms import WORDS, build_gpt2_base, build_llama_chat
from workers.engines.llm import CausalLM, LLMReviewer
from workers.engines.llm.constrained import json_schema_constraint
from workers.engines.llm.prompts import TEMPLATES
from workers.engines.llm.quotes import Span, locate_quotes, parse_answer, window_starts
from workers.engines.llm.review import Review
from workers.engines.llm.review_answer import answer_schema
from workers.registry import Registry, unavailable_reason

CATEGORIES = ["Governing Law", "Parties"]
CONTRACT = ("MASTER SERVICES AGREEMENT\n\nThis Agreement is made between Acme Corp. and Beta LLC.\n"
            "1. Governing Law. This Agreement shall be governed by the laws of\nthe State of New York.\n"
            "2. Term. This Agreement renews automatically for successive one-year terms.")


@pytest.fixture(scope="module")
def llms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("llms")
    return {"llama": str(build_llama_chat(root / "llama-chat")), "gpt2": str(build_gpt2_base(root / "gpt2-base"))}


@pytest.fixture(scope="module")
def registry(llms: dict[str, str]) -> Registry:
    return Registry(Settings(model_dirs=[str(Path(llms["llama"]).parent)], device="cpu", batch_max_tokens=8192,
                             llm_max_new_tokens={"review": 160}))


# ------------------------------------------------------------------------------ quotes, pure functions
def test_quotes_are_located_exactly_or_across_rewritten_whitespace_and_others_dropped() -> None:
    quotes = ["shall be governed by the laws of the State of New York.",  # the text has a line break inside
              "between Acme Corp. and Beta LLC",
              "shall be governed by the laws of the State of California.",  # fabricated
              "Acme",  # too short to say where it comes from
              "renews   automatically"]
    spans, unverified = locate_quotes(CONTRACT, quotes)
    assert unverified == 2 and spans[2] is None and spans[3] is None
    for quote, span in zip(quotes, spans, strict=True):
        if span is not None:
            assert " ".join(CONTRACT[span.start:span.end].split()) == " ".join(quote.split())
    assert CONTRACT[spans[1].start:spans[1].end] == quotes[1]  # type: ignore[union-attr]
    assert "\n" in CONTRACT[spans[0].start:spans[0].end]  # type: ignore[union-attr]


def test_a_repeated_quote_is_placed_in_the_window_it_was_quoted_from() -> None:
    text = "Each party shall keep it confidential. " * 3
    assert locate_quotes(text, ["shall keep it confidential"])[0] == [Span(11, 37)]
    assert locate_quotes(text, ["shall keep it confidential"], near=40)[0] == [Span(50, 76)]
    windows = ["Each party shall keep it confidential.", "Each party shall keep it confidential. Each party "
               "shall keep it confidential."]
    assert window_starts(text, windows) == [0, 39]


def test_a_fabricated_quote_is_dropped_and_counted_never_a_clause() -> None:
    review = Review(CONTRACT, CATEGORIES)
    review.add({"clauses": [{"category": "Governing Law", "quote": "governed by the laws of the State of New York"},
                            {"category": "Governing Law", "quote": "governed by the laws of Delaware, always"},
                            {"category": "Exclusivity", "quote": "between Acme Corp. and Beta LLC"}],  # not asked
                "fields": {"parties": ["Acme Corp.", "Beta LLC"], "agreement_date": "2021-02-30",
                           "governing_law": "New York"},
                "risks": [{"flag": "auto_renewal", "severity": "medium", "quote": "renews automatically"},
                          {"flag": "non_compete", "severity": "high", "quote": "shall never compete with Acme"}]},
               near=0)
    result = review.result()
    assert result["unverified_quotes"] == 2
    [clause] = result["clauses"]
    assert clause["category"] == "Governing Law"
    assert CONTRACT[clause["start"]:clause["end"]] == clause["text"] and "New York" in clause["text"]
    [risk] = result["risks"]
    assert risk["flag"] == "auto_renewal"
    assert CONTRACT[risk["clause_start"]:risk["clause_end"]] == "renews automatically"
    fields = result["fields"]
    assert fields["parties"] == [{"name": "Acme Corp."}, {"name": "Beta LLC"}] and fields["governing_law"] == "New York"
    assert fields["agreement_date"] is None  # the pattern let 2021-02-30 through; it is no date


def test_an_answer_cut_by_the_token_limit_keeps_its_complete_items() -> None:
    whole = json.dumps({"clauses": [{"category": "Parties", "quote": "between Acme Corp. and Beta"},
                                    {"category": "Governing Law", "quote": "the laws of the State of New York"}],
                        "fields": {"parties": []}}, separators=(",", ":"))
    assert parse_answer(whole) == (json.loads(whole), True)
    cut = whole[:whole.index("the laws") + 5]
    value, complete = parse_answer(cut)
    assert not complete
    assert value == {"clauses": [{"category": "Parties", "quote": "between Acme Corp. and Beta"},
                                 {"category": "Governing Law"}]}
    assert parse_answer('{"cla') == (None, False)


# ------------------------------------------------------------------------------ the constraint
def test_every_constrained_answer_of_a_batch_is_valid_against_the_schema(llms: dict[str, str]) -> None:
    model = CausalLM(llms["llama"], None, torch.device("cpu"))
    schema = answer_schema(CATEGORIES)
    prompts = [model.encode(" ".join(WORDS[i:3 * i + 2])) for i in range(12)]  # twelve lengths: padded rows
    assert max(len(p) for p in prompts) + 420 <= model.context
    free = model.generate(prompts[:4], 40)
    assert not any(_parses(g.text) for g in free)  # random weights alone write no JSON
    answers = model.generate(prompts, 420, constraint=json_schema_constraint(model, schema))
    validator = jsonschema.Draft202012Validator(schema)
    for g in answers:
        assert g.finish_reason == "stop", g
        validator.validate(json.loads(g.text))
    assert json_schema_constraint(model, schema) is json_schema_constraint(model, dict(schema))  # compiled once


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_a_schema_the_decoder_cannot_compile_is_its_own_error(llms: dict[str, str]) -> None:
    model = CausalLM(llms["llama"], None, torch.device("cpu"))
    with pytest.raises(DocumentError) as e:
        json_schema_constraint(model, {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}})
    assert e.value.kind == "invalid_schema"


# ------------------------------------------------------------------------------ the engine
@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_every_review_of_a_batch_validates_and_carries_provenance(registry: Registry, llms: dict[str, str],
                                                                 name: str) -> None:
    engine = registry.get(REVIEW, llms[name], params={"engine": "llm"})
    assert isinstance(engine, LLMReviewer)
    texts = [CONTRACT, "   "] + [prose(60 + 90 * i, WORDS, seed=i) for i in range(4)]
    params = ReviewParams(engine="llm", categories=CATEGORIES, max_new_tokens=96)
    outcomes = engine.run(texts, params)
    assert isinstance(outcomes[1], DocumentError) and outcomes[1].kind == "empty_document"
    validator = jsonschema.Draft202012Validator(contract.load("review.result"))
    form = "chat" if name == "llama" else "completion"
    for text, o in zip(texts, outcomes, strict=True):
        if not text.strip():
            continue
        assert isinstance(o, dict), o
        validator.validate(o)
        assert o["engine"] == "llm" and o["model"]["id"] == llms[name] and o["chunks"] >= 1
        for clause in o["clauses"]:
            assert clause["category"] in CATEGORIES and text[clause["start"]:clause["end"]] == clause["text"]
        llm = o["llm"]
        assert llm["template"] == {"id": "review", "form": form, "sha256": hashlib.sha256(
            TEMPLATES["review"][0 if form == "chat" else 1].encode()).hexdigest()}
        assert llm["prompt_tokens"] > 0 and 0 < llm["completion_tokens"] <= 96 * o["chunks"]
        assert llm["generation"]["max_new_tokens"] == 96 and llm["finish_reason"] in ("stop", "length")
    assert engine.run([texts[0], texts[2]], params) == [outcomes[0], outcomes[2]]  # greedy: reruns agree


def test_a_long_contract_is_read_in_windows_never_cut(registry: Registry, llms: dict[str, str]) -> None:
    engine = registry.get(REVIEW, llms["llama"], params={"engine": "llm"})
    text = prose(3000, WORDS, seed=7)
    [o] = engine.run([text], ReviewParams(engine="llm", categories=CATEGORIES, max_new_tokens=64))
    assert isinstance(o, dict), o
    assert o["chunks"] >= 4  # the tiny model's context is 512 tokens
    assert o["llm"]["prompt_tokens"] > engine.model.count_tokens(text)  # every window was read


def test_review_limits_have_their_error_kinds(registry: Registry, llms: dict[str, str]) -> None:
    engine = registry.get(REVIEW, llms["llama"], params={"engine": "llm"})
    [e] = engine.run([CONTRACT], ReviewParams(engine="llm", categories=CATEGORIES, max_new_tokens=161))
    assert isinstance(e, DocumentError) and e.kind == "too_many_new_tokens" and "160" in e.message
    [e] = engine.run([CONTRACT], ReviewParams(engine="llm", max_new_tokens=150))  # 41 categories: no room
    assert isinstance(e, DocumentError) and e.kind == "prompt_too_long"
    hurried = Registry(Settings(model_dirs=[str(Path(llms["llama"]).parent)], device="cpu",
                                llm_document_timeout_s=1e-6))
    [e] = hurried.get(REVIEW, llms["llama"], params={"engine": "llm"}).run(
        [CONTRACT], ReviewParams(engine="llm", categories=CATEGORIES, max_new_tokens=32))
    assert isinstance(e, DocumentError) and e.kind == "generation_timeout"


# ------------------------------------------------------------------------------ which engine takes a causal LM
def test_review_no_longer_refuses_a_causal_lm(llms: dict[str, str]) -> None:
    assert wrong_kind_reason(REVIEW, "llm", CAUSAL_LM, "m") is None
    reason = wrong_kind_reason(REVIEW, "prototypes", CAUSAL_LM, "m")
    assert reason is not None and "the llm engine takes it (--engine llm)" in reason
    assert "needs a causal LM" in str(wrong_kind_reason(REVIEW, "llm", ENCODER, "m"))
    assert kind_problem(REVIEW, None, llms["llama"]) is None
    assert kind_problem(REVIEW, "llm", llms["llama"]) is None
    # a worker whose configured review model is a causal LM takes the review queue
    folder = str(Path(llms["llama"]).parent)
    assert unavailable_reason(Settings(review_model=llms["llama"], model_dirs=[folder]), REVIEW) is None
    # DOCQUEUE_LLM_MODEL is what --engine llm runs when the submission names no model
    registry = Registry(Settings(llm_model=llms["llama"], model_dirs=[folder], device="cpu"))
    assert isinstance(registry.get(REVIEW, params={"engine": "llm"}), LLMReviewer)
    with pytest.raises(DocumentError) as e:
        registry.get(REVIEW, llms["llama"], params={"engine": "prototypes"})
    assert e.value.kind == "wrong_model_kind"
