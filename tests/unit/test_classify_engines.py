"""Classify engines on real models: MiniLM for the embedding engine (zero-shot, multi-label,
few-shot), tiny classifiers built here for the fine-tuned and NLI paths, loaded by the real loader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from docqueue.classifier_config import classify_engine_for, nli_label_ids
from docqueue.errors import DocumentError
from docqueue.models_catalog import classify_engine, configured_models, locate
from docqueue.names import CLASSIFY
from docqueue.params import parse_params
from docqueue.settings import get_settings
from tests.conftest import FIXTURES
from tests.helpers import TRUSTED_MODELS
from tests.tiny_classifiers import CLS_LABELS, NLI_LABELS, build_distilbert_cls, build_minilm_cls
from workers.engines import classify as classify_module
from workers.engines.classify import ZeroShotEmbeddingClassifier, label_prompts
from workers.engines.classify_common import classification, normalise_label
from workers.engines.document_kinds import kind_description, kind_descriptions
from workers.engines.embedding import OFFLINE_MINILM, resolve_model
from workers.engines.label_words import LabelWords
from workers.engines.nli import NLIZeroShotClassifier
from workers.engines.sequence_classifier import FineTunedClassifier, classifier_kind
from workers.pipeline import typed_params
from workers.registry import Registry


def typed(raw: dict[str, Any]) -> Any:
    """Params as the pipeline hands them to an engine (validated by docqueue.params)."""
    return parse_params(CLASSIFY, raw)


TOPICS = ["sports", "finance", "cooking", "technology"]
TEXTS = {
    "sports": "The striker scored twice and the home team won the championship final.",
    "cooking": "Preheat the oven, whisk the eggs with sugar and bake the cake for forty minutes.",
    "technology": "The new smartphone chip doubles battery life and ships with a faster processor.",
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(get_settings(device="cpu", **TRUSTED_MODELS))


@pytest.fixture(scope="module")
def embedding(registry: Registry) -> ZeroShotEmbeddingClassifier:
    engine = registry.get(CLASSIFY, OFFLINE_MINILM)
    assert isinstance(engine, ZeroShotEmbeddingClassifier)
    return engine


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-classifiers")


@pytest.fixture
def offline_hub() -> Iterator[None]:
    """The hub is unreachable here; offline mode makes that fail at once instead of after retries."""
    old = huggingface_hub.constants.HF_HUB_OFFLINE
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    yield
    huggingface_hub.constants.HF_HUB_OFFLINE = old


# ------------------------------------------------------------------------------- embedding engine
def test_zero_shot_single_label(embedding: ZeroShotEmbeddingClassifier) -> None:
    out = embedding.run(list(TEXTS.values()), typed({"labels": TOPICS}))
    for expected, result in zip(TEXTS, out, strict=True):
        assert isinstance(result, dict)
        assert result["label"] == expected and result["labels"] == [expected]
        assert result["engine"] == "embedding"
        assert set(result["scores"]) == set(TOPICS)
        assert abs(sum(result["scores"].values()) - 1) < 0.01


def test_multi_label_scores_are_independent(embedding: ZeroShotEmbeddingClassifier) -> None:
    text = "The football club reported record ticket revenue and its shares rose 5% on the stock exchange."
    params = {"labels": TOPICS, "multi_label": True, "template": "This text is about {}."}
    [result] = embedding.run([text], typed(params))
    assert isinstance(result, dict)
    assert set(result["labels"]) == {"sports", "finance"}, result
    assert sum(result["scores"].values()) > 1.2  # two near-certain labels: not a distribution
    # a label's score does not depend on which other labels were asked for
    [alone] = embedding.run([text], typed({**params, "labels": ["sports", "cooking"]}))
    assert isinstance(alone, dict)
    assert alone["scores"]["sports"] == result["scores"]["sports"]
    # a higher threshold lists fewer labels
    [strict] = embedding.run([text], typed({**params, "threshold": 0.999}))
    assert isinstance(strict, dict) and len(strict["labels"]) < 2


def test_label_descriptions_steer_the_decision(embedding: ZeroShotEmbeddingClassifier) -> None:
    text = "Please find attached the amount due for March; payment within 30 days to the account below."
    labels = ["alpha", "beta"]
    described = {"labels": labels, "descriptions": {"alpha": "a recipe for a dessert",
                                                     "beta": "an invoice asking for payment"}}
    [result] = embedding.run([text], typed(described))
    assert isinstance(result, dict) and result["label"] == "beta"
    swapped = {"labels": labels, "descriptions": {"beta": "a recipe for a dessert",
                                                   "alpha": "an invoice asking for payment"}}
    [result] = embedding.run([text], typed(swapped))
    assert isinstance(result, dict) and result["label"] == "alpha"


def _ledgar() -> tuple[list[str], list[dict[str, str]], list[dict[str, str]]]:
    rows = [json.loads(line) for line in (FIXTURES / "ledgar_fewshot.jsonl").read_text().splitlines()]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    examples = [{"text": r["text"], "label": r["label"]} for r in rows if r["split"] == "example"]
    tests = [r for r in rows if r["split"] == "test"]
    return labels, examples, tests


def test_few_shot_examples_improve_accuracy_on_real_provisions(registry: Registry) -> None:
    engine = ZeroShotEmbeddingClassifier(registry.encoder(OFFLINE_MINILM))  # a fresh example cache
    labels, examples, tests = _ledgar()
    texts = [r["text"] for r in tests]

    def correct(params: dict) -> list[bool]:
        outcomes = engine.run(texts, typed(params))
        return [isinstance(o, dict) and o["label"] == r["label"] for o, r in zip(outcomes, tests, strict=True)]

    zero = correct({"labels": labels})
    few = correct({"labels": labels, "examples": examples})
    assert sum(few) >= sum(zero) + 3, (sum(zero), sum(few))
    assert any(f and not z for f, z in zip(few, zero, strict=True))  # at least one decision flipped to right
    # the examples were embedded once, then reused from the cache (keyed by their hash)
    assert engine.examples.builds == 1
    correct({"labels": labels, "examples": examples})
    assert engine.examples.builds == 1
    # without labels, the examples' labels are the label set
    [result] = engine.run(texts[:1], typed({"examples": examples}))
    assert isinstance(result, dict) and set(result["scores"]) == set(labels)


def test_few_shot_multi_label_uses_examples(embedding: ZeroShotEmbeddingClassifier) -> None:
    labels, examples, tests = _ledgar()
    texts = [r["text"] for r in tests]

    def micro_f1(params: dict) -> float:
        outs = embedding.run(texts, typed(params))
        listed = [set(o["labels"]) for o in outs if isinstance(o, dict)]
        hits = sum(r["label"] in chosen for r, chosen in zip(tests, listed, strict=True))
        precision, recall = hits / max(1, sum(map(len, listed))), hits / len(tests)
        return 2 * precision * recall / max(1e-9, precision + recall)

    plain = micro_f1({"labels": labels, "multi_label": True})
    steered = micro_f1({"labels": labels, "multi_label": True, "examples": examples})
    assert steered > plain + 0.1, (plain, steered)


def test_bad_params_fail_each_document_clearly(embedding: ZeroShotEmbeddingClassifier) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"labels": ["only-one"]}, "at least two"),
        ({"labels": ["a", "b"], "examples": [{"text": "x", "label": "c"}]}, "missing from the label set: c"),
        ({"labels": ["a", "b"], "examples": [{"text": "x"}]}, "'examples'[0].label"),
        ({"labels": ["a", "b"], "threshold": 2}, "threshold"),
        ({"labels": ["a", "b"], "template": "no slot"}, "template"),
        ({"labels": ["a", "b"], "examples": [{"text": "x", "label": "a"}] * 1001}, "at most 1000"),
    ]
    for params, words in cases:
        error = typed_params(CLASSIFY, params, get_settings())
        assert isinstance(error, DocumentError) and error.kind == "invalid_params" and words in error.message, \
            (params, error)
    out = embedding.run(["sports news", "  "], typed({"labels": TOPICS}))
    assert isinstance(out[0], dict)
    assert isinstance(out[1], DocumentError) and out[1].kind == "empty_document"
    [mismatch] = embedding.run(["text"], typed({"labels": TOPICS, "engine": "nli"}))
    assert isinstance(mismatch, DocumentError) and mismatch.kind == "engine_mismatch"


# -------------------------------------------------------------------------------- fine-tuned engine
@pytest.fixture(scope="module")
def distilbert_dir(tiny_dir: Path) -> Path:
    return build_distilbert_cls(tiny_dir / "distilbert-cls")


def _direct_logits(path: Path, text: str, pair: str | None = None) -> torch.Tensor:
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    enc = tok(text, pair, return_tensors="pt") if pair is not None else tok(text, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).logits[0]


def test_fine_tuned_classifier_uses_its_own_labels(registry: Registry, distilbert_dir: Path) -> None:
    assert classifier_kind(resolve_model(str(distilbert_dir))) == "fine-tuned"
    engine = registry.get(CLASSIFY, str(distilbert_dir))
    assert isinstance(engine, FineTunedClassifier)
    text = "The buyer shall pay the invoice within thirty days."
    [result] = engine.run([text], typed({"labels": ["ignored", "labels"]}))
    assert isinstance(result, dict)
    assert set(result["scores"]) == set(CLS_LABELS) and result["engine"] == "fine-tuned"
    expected = torch.softmax(_direct_logits(distilbert_dir, text), dim=-1)
    for label, p in zip(CLS_LABELS, expected.tolist(), strict=True):
        assert result["scores"][label] == pytest.approx(p, abs=1e-3)
    assert result["label"] == CLS_LABELS[int(expected.argmax())]
    [mismatch] = engine.run([text], typed({"labels": ["a", "b"], "engine": "embedding"}))
    assert isinstance(mismatch, DocumentError) and mismatch.kind == "engine_mismatch"


def test_fine_tuned_long_document_averages_windows(registry: Registry, distilbert_dir: Path) -> None:
    engine = registry.get(CLASSIFY, str(distilbert_dir))
    assert isinstance(engine, FineTunedClassifier)
    head = "the contract shall renew each year unless notice is given " * 12
    tail = "the client will pay the invoice fee and tax within days " * 12
    [result] = engine.run([head + tail], typed({"engine": "fine-tuned"}))
    windows, owners = engine.model.encode([head + tail])
    assert len(windows) > 1 and set(owners) == {0}  # longer than the 126-token window
    mean = engine.model.logits(windows).mean(0)
    for label, p in zip(CLS_LABELS, torch.softmax(mean, dim=-1).tolist(), strict=True):
        assert isinstance(result, dict) and result["scores"][label] == pytest.approx(p, abs=1e-3)


def test_multi_label_fine_tuned_model_gets_sigmoids(registry: Registry, tiny_dir: Path) -> None:
    path = build_distilbert_cls(tiny_dir / "distilbert-multi", problem_type="multi_label_classification")
    engine = registry.get(CLASSIFY, str(path))
    text = "Each party may terminate the agreement."
    [result] = engine.run([text], typed({"engine": "fine-tuned"}))
    expected = torch.sigmoid(_direct_logits(path, text))
    assert isinstance(result, dict)
    assert [result["scores"][x] for x in CLS_LABELS] == pytest.approx(expected.tolist(), abs=1e-3)
    assert result["labels"] == sorted([x for x in CLS_LABELS if result["scores"][x] >= 0.5],
                                      key=lambda x: -result["scores"][x])


# ------------------------------------------------------------------------------------- NLI engine
@pytest.fixture(scope="module")
def nli_dir(tiny_dir: Path) -> Path:
    source = resolve_model(OFFLINE_MINILM).location
    return build_minilm_cls(tiny_dir / "minilm-nli", source, NLI_LABELS)


def test_nli_engine_scores_entailment(registry: Registry, nli_dir: Path) -> None:
    assert classifier_kind(resolve_model(str(nli_dir))) == "nli"
    engine = registry.get(CLASSIFY, str(nli_dir))
    assert isinstance(engine, NLIZeroShotClassifier)
    text = TEXTS["cooking"]
    labels = ["cooking", "sports", "finance"]
    entail, contra = NLI_LABELS.index("entailment"), NLI_LABELS.index("contradiction")
    direct = torch.stack([_direct_logits(nli_dir, text, f"This example is {x}.") for x in labels])

    [single] = engine.run([text], typed({"labels": labels}))
    assert isinstance(single, dict) and single["engine"] == "nli"
    expected = torch.softmax(direct[:, entail], dim=0)
    assert [single["scores"][x] for x in labels] == pytest.approx(expected.tolist(), abs=1e-3)

    [multi] = engine.run([text], typed({"labels": labels, "multi_label": True}))
    expected = torch.softmax(direct[:, [entail, contra]], dim=-1)[:, 0]
    assert isinstance(multi, dict)
    assert [multi["scores"][x] for x in labels] == pytest.approx(expected.tolist(), abs=1e-3)

    [few] = engine.run([text], typed({"labels": labels, "examples": [{"text": "x", "label": "cooking"}]}))
    assert isinstance(few, DocumentError) and few.kind == "invalid_params"


def test_missing_hub_model_is_a_clear_per_document_error(registry: Registry, offline_hub: None,
                                                         tmp_path: Path) -> None:
    for spec in ("MoritzLaurer/deberta-v3-base-zeroshot-v2.0", str(tmp_path / "no-such-model")):
        with pytest.raises(DocumentError) as info:
            registry.get(CLASSIFY, spec)
        assert info.value.kind == "model_unavailable"
        assert spec in info.value.message and "HF_HOME" in info.value.message


def test_model_kind_of_the_offline_encoder_is_embedding() -> None:
    assert classifier_kind(resolve_model(OFFLINE_MINILM)) == "embedding"


def test_models_list_says_which_classify_engine_runs(distilbert_dir: Path, nli_dir: Path) -> None:
    rows = configured_models(get_settings(classify_model=str(distilbert_dir)))
    classify = {r.engine: r for r in rows if r.task == CLASSIFY}
    assert classify["fine-tuned"].spec == str(distilbert_dir) and classify["fine-tuned"].default
    assert classify["nli"].spec == get_settings().classify_nli_model and not classify["nli"].default
    assert classify_engine(locate(str(nli_dir))) == "nli"
    assert classify_engine(locate(OFFLINE_MINILM)) == "embedding"
    assert classify_engine(locate("/no/such/model")) == "?"


def test_nli_long_document_takes_the_best_window_per_label(registry: Registry, nli_dir: Path) -> None:
    engine = registry.get(CLASSIFY, str(nli_dir))
    assert isinstance(engine, NLIZeroShotClassifier)
    long_text = " ".join([TEXTS["cooking"], TEXTS["sports"], TEXTS["technology"]] * 25)  # > 256 tokens
    labels = ["cooking", "sports"]
    [result] = engine.run([long_text], typed({"labels": labels, "multi_label": True}))
    assert isinstance(result, dict)
    model = AutoModelForSequenceClassification.from_pretrained(nli_dir).eval()
    entail, contra = NLI_LABELS.index("entailment"), NLI_LABELS.index("contradiction")
    for label in labels:
        windows, _ = engine.model.encode([long_text], [f"This example is {label}."])
        assert len(windows) > 1
        with torch.inference_mode():  # each window alone, unpadded
            logits = torch.stack([model(**{k: torch.tensor([v]) for k, v in w.items()}).logits[0] for w in windows])
        best = torch.softmax(logits[:, [entail, contra]], dim=-1)[:, 0].max()
        assert result["scores"][label] == pytest.approx(float(best), abs=1e-3)


def test_engine_rule_reads_the_label_names_of_the_head() -> None:
    head = {"architectures": ["DebertaV2ForSequenceClassification"]}
    assert classify_engine_for({**head, "id2label": {"0": "entailment", "1": "not_entailment"}}) == "nli"
    assert nli_label_ids({"0": "entailment", "1": "not_entailment"}) == (0, 1)
    assert nli_label_ids({"0": "CONTRADICTION", "1": "NEUTRAL", "2": "ENTAILMENT"}) == (2, 0)
    assert classify_engine_for({**head, "id2label": {"0": "LABEL_0", "1": "LABEL_1"}}) == "fine-tuned"
    assert classify_engine_for({"architectures": ["BertModel"], "id2label": {"0": "entailment"}}) == "embedding"
    assert classify_engine_for({}) == "embedding"


def test_a_message_asking_for_nli_without_a_model_gets_the_configured_nli_model(nli_dir: Path) -> None:
    registry = Registry(get_settings(device="cpu", classify_nli_model=str(nli_dir), **TRUSTED_MODELS))
    engine = registry.get(CLASSIFY, params={"engine": "nli", "labels": ["a", "b"]})
    assert isinstance(engine, NLIZeroShotClassifier) and engine.model_id == str(nli_dir)
    assert isinstance(registry.get(CLASSIFY, params={"labels": ["a", "b"]}), ZeroShotEmbeddingClassifier)


def test_scores_keep_the_order_of_the_labels_given() -> None:
    labels = ["news", "contract", "invoice"]
    result = classification(labels, [0.1, 0.3, 0.6], multi_label=True, threshold=0.2, engine="embedding")
    assert list(result) == ["label", "labels", "scores", "engine"]
    assert list(result["scores"]) == labels and result["labels"] == ["invoice", "contract"]


# ------------------------------------------------------------------ zero-shot defaults (issue 14)
def test_label_names_become_words_for_the_embedding() -> None:
    assert normalise_label("Sci/Tech") == "Sci or Tech"
    assert normalise_label("tech_support") == "tech support"
    assert normalise_label("TechSupport") == "Tech Support"
    assert normalise_label("Anti-Assignment") == "Anti-Assignment"  # a hyphenated word stays one word
    assert normalise_label("  Governing   Laws ") == "Governing Laws"


def test_result_keys_stay_the_labels_as_given(embedding: ZeroShotEmbeddingClassifier) -> None:
    labels = ["Sci/Tech", "Sports", "tech_support"]
    [result] = embedding.run(["The new graphics chip renders games twice as fast."], typed({"labels": labels}))
    assert isinstance(result, dict) and list(result["scores"]) == labels and result["label"] in labels


CLEAR_CUT = FIXTURES / "classify_clear_cut"  # not under classify/: tests submit that folder whole
DOC_KINDS = ["contract", "invoice", "news", "email"]


def _clear_cut() -> list[tuple[str, str]]:
    """(text, kind) of the clear-cut documents: the kind is the file name's first word."""
    files = sorted(CLEAR_CUT.glob("*.txt"))
    docs = [(f.read_text(encoding="utf-8"), f.name.split("-")[0]) for f in files]
    docs.append(((FIXTURES / "classify" / "invoice-7731.txt").read_text(encoding="utf-8"), "invoice"))
    docs.append(((FIXTURES / "classify" / "energous-strategic-alliance.txt").read_text(encoding="utf-8"), "contract"))
    return docs


def test_clear_cut_documents_with_the_default_labels_of_the_readme(embedding: ZeroShotEmbeddingClassifier) -> None:
    """Issue 14: with `--labels contract,invoice,news,email` contract excerpts and a central-bank news
    item came out as invoices, and a third of the documents were wrong. Every contract excerpt is a
    contract, no contract or news item is called an invoice, and most of the 17 are right: measured
    15 with the built-in descriptions of document kinds (12 without them, as the old default; the bare
    names 14). The two left: a press release called an e-mail, and an e-mail about a damaged order
    (its number, a refund) called an invoice (README, Classify)."""
    docs = _clear_cut()
    out = embedding.run([t for t, _ in docs], typed({"labels": DOC_KINDS}))
    got = [(kind, o["label"]) for (_, kind), o in zip(docs, out, strict=True) if isinstance(o, dict)]
    assert len(got) == len(docs)
    assert [g for k, g in got if k == "contract"] == ["contract"] * sum(k == "contract" for k, _ in got), got
    assert not [(k, g) for k, g in got if g == "invoice" and k in ("contract", "news")], got
    assert sum(k == g for k, g in got) >= 15, got


def test_document_kinds_have_built_in_descriptions_a_users_own_replaces() -> None:
    """In a label set of document kinds, a kind gets a description in the single-label default only;
    the user's description wins, a template means the user's own prompts, and in a set of other
    things (LEDGAR's clause types hold "Agreements") a label that happens to name a kind gets none."""
    assert kind_description("Invoices") == kind_description("invoice") == kind_description("bill")
    assert kind_description("E-mail") == kind_description("email") and "Subject" in (kind_description("email") or "")
    assert kind_description("research_paper") == kind_description("Scientific Paper")
    assert kind_description("Press Releases") == kind_description("press release") != kind_description("news")
    assert kind_description("Governing Laws") is None and kind_description("sports") is None
    labels = ["invoice", "sports"]
    default = label_prompts(labels, {}, ensemble=True)
    assert default[0][1] == (kind_description("invoice"),) and len(default[1]) == 1
    assert label_prompts(labels, {"invoice": "a bill"}, ensemble=True)[0][1] == ("a bill",)
    assert label_prompts(labels, {}, "{}") == [(("invoice",),), (("sports",),)]
    assert kind_descriptions(["Agreements", "Notices", "Governing Laws"]) == {}
    assert all(len(parts) == 1 for parts in label_prompts(["Agreements", "Notices", "Waivers"], {}, ensemble=True))
    assert set(kind_descriptions(["contract", "invoice", "casual conversation"])) == {"contract", "invoice"}


def test_default_beats_bare_label_names_on_a_held_out_sample(embedding: ZeroShotEmbeddingClassifier) -> None:
    """24 documents drawn (seed 14) from the held-out part of the document-type set (LEDGAR provisions
    and SciTLDR abstracts; no template or calibration was chosen on them). Measured: new default 19,
    bare names without a template 13, the old default `Type of document: {}.` 9 (17 before the
    built-in descriptions of document kinds, 16 before the label-word evidence)."""
    rows = [json.loads(line) for line in (FIXTURES / "classify_heldout_doctype.jsonl").read_text().splitlines()]
    labels = ["contract", "invoice", "news", "email", "research paper"]
    texts = [r["text"] for r in rows]

    def right(extra: dict) -> int:
        out = embedding.run(texts, typed({"labels": labels, **extra}))
        return sum(isinstance(o, dict) and o["label"] == r["label"] for o, r in zip(out, rows, strict=True))

    new, bare, old = right({}), right({"template": "{}"}), right({"template": "Type of document: {}."})
    assert new >= bare + 5 and new >= old + 9, (new, bare, old)


def test_label_words_match_by_stem_and_weigh_what_tells_labels_apart() -> None:
    labels = ["Indemnifications", "Governing Laws", "Compliance With Laws", "Terms and Conditions", "General"]
    words = LabelWords(labels)
    ev = words.evidence(["the supplier shall indemnify the buyer", "this agreement is governed by the laws of delaware",
                         "each party complies with all applicable laws", "these terms apply", "nothing here"])
    assert ev.shape == (5, 5)
    assert ev[0, 0] == pytest.approx(1.0)  # "indemnify" is a form of "Indemnifications"
    assert ev[1, 1] == pytest.approx(1.0) and ev[2, 2] == pytest.approx(1.0)  # "complies" ~ "Compliance"
    # "laws" is in two labels, "governed" in one: it says less, so it is the smaller share of its label
    assert 0 < ev[2, 1] < 0.5 and ev[1, 2] == pytest.approx(ev[2, 1])
    assert ev[3, 3] == pytest.approx(0.5)  # "and" is no word of the label; "terms" is half of it
    assert ev[4].tolist() == [0.0] * 5
    assert ev[:, 4].tolist() == [0.0] * 5  # "General" has no content word: never any evidence


def test_segments_that_name_a_label_lean_to_it_on_real_provisions(embedding: ZeroShotEmbeddingClassifier,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """40 LEDGAR provisions, 8 labels (tests/fixtures/ledgar_fewshot.jsonl), the default without
    descriptions or examples. Measured: 22 right with label words, 19 without, 15 bare names."""
    rows = [json.loads(line) for line in (FIXTURES / "ledgar_fewshot.jsonl").read_text().splitlines()]
    labels = sorted({r["label"] for r in rows})

    def right() -> int:
        out = embedding.run([r["text"] for r in rows], typed({"labels": labels}))
        return sum(isinstance(o, dict) and o["label"] == r["label"] for o, r in zip(out, rows, strict=True))

    with_words = right()
    monkeypatch.setattr(classify_module, "LABEL_WORD_WEIGHT", 0.0)
    assert with_words >= right() + 2 and with_words >= 21, with_words
