"""A model of the wrong kind is refused, never used silently (``wrong_model_kind``): per document by
the worker's registry, and at start by the worker's queue check (which ``submit`` repeats). Only the
model's config.json is read, so these folders hold nothing else: nothing is loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from docqueue.errors import DocumentError
from docqueue.model_kinds import CAUSAL_LM, ENCODER, SEQ2SEQ, SEQUENCE_CLASSIFIER, kind_of_config
from docqueue.models_catalog import classify_engine, locate, start_check
from docqueue.names import CLASSIFY, REVIEW, SUMMARIZE, TRANSLATE
from docqueue.settings import Settings
from workers.registry import Registry

CONFIGS: dict[str, dict[str, Any]] = {
    "llama-chat": {"architectures": ["LlamaForCausalLM"], "model_type": "llama"},
    "gpt2": {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"},
    "bart": {"architectures": ["BartForConditionalGeneration"], "model_type": "bart", "is_encoder_decoder": True},
    "nli": {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "entailment", "1": "contradiction"}},
    "minilm": {"architectures": ["BertModel"], "model_type": "bert"},
}


@pytest.fixture
def models(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, config in CONFIGS.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
        out[name] = str(tmp_path / name)
    return out


def test_the_kind_comes_from_the_config() -> None:
    kinds = {name: kind_of_config(c) for name, c in CONFIGS.items()}
    assert kinds == {"llama-chat": CAUSAL_LM, "gpt2": CAUSAL_LM, "bart": SEQ2SEQ, "nli": SEQUENCE_CLASSIFIER,
                     "minilm": ENCODER}
    assert kind_of_config({"architectures": ["Qwen2ForCausalLM"]}) == CAUSAL_LM


def _refusal(registry: Registry, task: str, model: str, **params: object) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        registry.get(task, model, params=params)
    return caught.value


def test_the_worker_refuses_each_wrong_kind_per_document(models: dict[str, str], tmp_path: Path) -> None:
    registry = Registry(Settings(model_dirs=[str(tmp_path)], device="cpu"))
    # the two cases: a chat model given to the extractive summarizer and to classify
    e = _refusal(registry, SUMMARIZE, models["llama-chat"], engine="extractive")
    assert e.kind == "wrong_model_kind" and "causal LM" in e.message and "the llm engine takes it (--engine llm)" \
        in e.message
    e = _refusal(registry, CLASSIFY, models["llama-chat"], engine="embedding", labels=["a", "b"])
    assert e.kind == "wrong_model_kind" and "the llm engine takes it" in e.message
    e = _refusal(registry, CLASSIFY, models["minilm"], engine="llm", labels=["a", "b"])
    assert e.kind == "wrong_model_kind" and "the embedding engine takes it" in e.message
    # the other engine of the task is named where one takes the model
    e = _refusal(registry, SUMMARIZE, models["bart"], engine="extractive")
    assert e.kind == "wrong_model_kind" and "the abstractive engine takes it (--engine abstractive)" in e.message
    e = _refusal(registry, CLASSIFY, models["minilm"], engine="fine-tuned", labels=["a", "b"])
    assert e.kind == "wrong_model_kind" and "the embedding engine takes it" in e.message
    # no engine of the task takes it: the tasks that would are named
    e = _refusal(registry, CLASSIFY, models["bart"], labels=["a", "b"])
    assert "no classify engine takes it" in e.message and "summarize (abstractive)" in e.message
    assert _refusal(registry, TRANSLATE, models["minilm"], to="de").kind == "wrong_model_kind"
    # review takes a causal LM with its llm engine now, and no other of its engines does
    e = _refusal(registry, REVIEW, models["gpt2"], engine="prototypes")
    assert e.kind == "wrong_model_kind" and "the llm engine takes it (--engine llm)" in e.message
    e = _refusal(registry, REVIEW, models["minilm"], engine="llm")
    assert e.kind == "wrong_model_kind" and "the prototypes engine takes it" in e.message
    assert _refusal(registry, REVIEW, models["bart"]).kind == "wrong_model_kind"
    assert _refusal(registry, SUMMARIZE, models["nli"], engine="abstractive").kind == "wrong_model_kind"
    assert registry.loads == 0 and registry.resident() == []  # refused before anything was loaded


def test_the_start_check_refuses_a_configured_model_of_the_wrong_kind(models: dict[str, str]) -> None:
    reason = start_check(Settings(summarize_extractive_model=models["llama-chat"]), SUMMARIZE)
    assert reason is not None and reason.startswith("summarize: wrong_model_kind: ") and "causal LM" in reason
    reason = start_check(Settings(summarize_engine="llm", llm_model=models["minilm"]), SUMMARIZE)
    assert reason is not None and "the extractive engine takes it" in reason
    reason = start_check(Settings(classify_model=models["bart"]), CLASSIFY)
    assert reason is not None and reason.startswith("classify: wrong_model_kind: ")
    reason = start_check(Settings(summarize_engine="abstractive", summarize_model=models["minilm"]), SUMMARIZE)
    assert reason is not None and "the extractive engine takes it" in reason
    reason = start_check(Settings(translate_model=models["nli"]), TRANSLATE)
    assert reason is not None and reason.startswith("translate: wrong_model_kind")
    reason = start_check(Settings(review_model=models["bart"]), REVIEW)
    assert reason is not None and reason.startswith("review: wrong_model_kind")
    # the right kinds pass
    assert start_check(Settings(summarize_engine="abstractive", summarize_model=models["bart"]), SUMMARIZE) is None
    assert start_check(Settings(classify_model=models["nli"]), CLASSIFY) is None
    # a causal LM is taken by the llm engine of classify, summarize and translate
    assert start_check(Settings(classify_model=models["llama-chat"]), CLASSIFY) is None
    assert start_check(Settings(summarize_engine="llm", llm_model=models["gpt2"]), SUMMARIZE) is None
    assert start_check(Settings(translate_model=models["llama-chat"]), TRANSLATE) is None


def test_models_list_names_the_llm_engine_for_a_causal_lm(models: dict[str, str]) -> None:
    assert classify_engine(locate(models["llama-chat"])) == "llm"
    assert classify_engine(locate(models["minilm"])) == "embedding"
    assert classify_engine(locate(models["nli"])) == "nli"
