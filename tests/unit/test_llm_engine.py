"""The causal-LM engine (``llm``) on tiny random models built at test time (tests/tiny_llms.py).

With random weights the answers are noise, so what is tested is what the engine enforces: classify
answers inside the label set (1,000 of them), windows that cover a long document, provenance, the
limits and their error kinds, chat and completion prompts, and one resident model for every task.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch

from docqueue.errors import DocumentError
from docqueue.names import CLASSIFY, SUMMARIZE, TRANSLATE
from docqueue.params import ClassifyParams, ParamsError, SummarizeParams, TranslateParams
from docqueue.settings import Settings
from tests.helpers import prose
from tests.tiny_llms import WORDS, build_all
from workers.engines.llm import CausalLM, LLMClassifier, LLMSummarizer, LLMTranslator
from workers.engines.llm.model import Generation
from workers.engines.llm.prompts import TEMPLATES
from workers.pipeline import RunReport, run_engine
from workers.registry import Registry

LABELS = ["invoice", "contract", "news", "invoice-late"]  # a label that is a prefix of another


@pytest.fixture(scope="module")
def llms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build_all(tmp_path_factory.mktemp("llms"))


@pytest.fixture(scope="module")
def registry(llms: dict[str, str]) -> Registry:
    folder = str(Path(llms["llama"]).parent)
    return Registry(Settings(model_dirs=[folder], device="cpu", batch_max_tokens=4096,
                             llm_max_new_tokens={"summarize": 64, "translate": 64}))


def _docs(n: int) -> list[str]:
    """Short documents (one or two sentences): what is tested is the answer set, not reading."""
    return [prose(20 + (i * 37) % 100, WORDS, seed=i) for i in range(n)]


def test_a_thousand_classify_answers_are_all_in_the_label_set(registry: Registry, llms: dict[str, str]) -> None:
    engine = registry.get(CLASSIFY, llms["llama"], params={"labels": LABELS})
    assert isinstance(engine, LLMClassifier)
    outcomes = engine.run(_docs(1000), ClassifyParams(labels=LABELS))
    assert len(outcomes) == 1000
    for o in outcomes:
        assert isinstance(o, dict), o
        assert o["label"] in LABELS and o["labels"] == [o["label"]] and list(o["scores"]) == LABELS
        assert sum(o["scores"].values()) == pytest.approx(1.0, abs=1e-3) and o["engine"] == "llm"


@pytest.mark.parametrize("name", ["gpt2", "gemma"])
def test_classify_with_a_base_model_and_another_chat_template(registry: Registry, llms: dict[str, str],
                                                              name: str) -> None:
    engine = registry.get(CLASSIFY, llms[name], params={"labels": LABELS})
    single = engine.run(_docs(100), ClassifyParams(labels=LABELS, descriptions={"news": "a newspaper article"}))
    multi = engine.run(_docs(20), ClassifyParams(labels=LABELS, multi_label=True, threshold=0.3))
    for o in single + multi:
        assert isinstance(o, dict) and o["label"] in LABELS and set(o["labels"]) <= set(LABELS), o
    for o in multi:
        assert isinstance(o, dict)
        assert o["labels"] == sorted((k for k, v in o["scores"].items() if v >= 0.3), key=lambda k: -o["scores"][k])
    first = single[0]
    assert isinstance(first, dict)
    form = "completion" if name == "gpt2" else "chat"
    assert first["llm"]["template"] == {"id": "classify", "form": form, "sha256": hashlib.sha256(
        TEMPLATES["classify"][0 if form == "chat" else 1].encode()).hexdigest()}


def test_one_resident_model_serves_every_task(registry: Registry, llms: dict[str, str]) -> None:
    before = registry.loads
    spec = llms["gemma"]
    assert isinstance(registry.get(CLASSIFY, spec, params={"labels": LABELS}), LLMClassifier)
    assert isinstance(registry.get(SUMMARIZE, spec, params={"engine": "llm"}), LLMSummarizer)
    assert isinstance(registry.get(TRANSLATE, spec, params={"to": "de"}), LLMTranslator)
    assert registry.loads - before <= 1  # classify loaded it in the test before, or here: once


def test_summaries_and_translations_carry_provenance_and_rerun_alike(registry: Registry,
                                                                     llms: dict[str, str]) -> None:
    summarizer = registry.get(SUMMARIZE, llms["llama"], params={"engine": "llm"})
    params = SummarizeParams.of({"engine": "llm", "style": "bullets", "max_words": 30, "summary_language": "German",
                                 "max_new_tokens": 16})
    docs = ["The buyer shall pay the invoice within thirty days. The seller may terminate.", "   "]
    first, empty = summarizer.run(docs, params)
    assert isinstance(empty, DocumentError) and empty.kind == "empty_document"
    assert isinstance(first, dict) and first["engine"] == "llm" and first["style"] == "bullets"
    usage = first["llm"]
    assert usage["model"] == llms["llama"] and usage["template"]["id"] == "summarize.bullets"
    assert usage["finish_reason"] in ("stop", "length") and 0 <= usage["completion_tokens"] <= 16
    assert usage["prompt_tokens"] > 10 and usage["generation"] == {"do_sample": False, "num_beams": 1,
                                                                   "max_new_tokens": 16}
    assert summarizer.run(docs[:1], params)[0] == first  # greedy: a rerun gives the same summary
    translator = registry.get(TRANSLATE, llms["gpt2"], params={"to": "de"})
    [out] = translator.run(["First paragraph here.\n\nSecond one, longer, with more words."],
                           TranslateParams.of({"to": "de", "from": "en", "max_new_tokens": 8}))
    assert isinstance(out, dict) and out["target_language"] == "de" and out["source_language"] == "en"
    assert out["translation"].count("\n\n") == 1 and out["chunks"] >= 2  # the paragraphs are kept
    assert out["llm"]["template"]["form"] == "completion"


def test_a_long_document_is_read_in_windows_never_cut(registry: Registry, llms: dict[str, str]) -> None:
    long_doc = prose(30_000, WORDS, seed=7)  # ~6,000 tokens against a 512-token context
    tokens = len(registry.llm(llms["llama"]).encode(long_doc))
    [c] = registry.get(CLASSIFY, llms["llama"], params={"labels": LABELS}).run([long_doc],
                                                                             ClassifyParams(labels=LABELS))
    assert isinstance(c, dict) and c["llm"]["windows"] >= tokens // 512 and c["llm"]["prompt_tokens"] >= tokens
    [s] = registry.get(SUMMARIZE, llms["llama"], params={"engine": "llm"}).run(
        [long_doc], SummarizeParams(engine="llm", max_new_tokens=16))
    assert isinstance(s, dict) and s["chunks"] >= tokens // 512 and s["llm"]["prompt_tokens"] >= tokens
    [t] = registry.get(TRANSLATE, llms["llama"], params={"to": "de"}).run([long_doc[:6000]],
                                                                          TranslateParams(to="de"))
    assert isinstance(t, dict) and t["chunks"] > 1
    assert t["llm"]["prompt_tokens"] >= len(registry.llm(llms["llama"]).encode(long_doc[:6000]))


def test_limits_have_their_own_error_kinds(registry: Registry, llms: dict[str, str]) -> None:
    summarizer = registry.get(SUMMARIZE, llms["llama"], params={"engine": "llm"})
    [e] = summarizer.run(["Some text."], SummarizeParams(engine="llm", max_new_tokens=65))
    assert isinstance(e, DocumentError) and e.kind == "too_many_new_tokens" and "64" in e.message
    with pytest.raises(ParamsError, match="style"):  # the params model refuses it before any engine runs
        SummarizeParams.of({"engine": "llm", "style": "haiku"})
    [e] = summarizer.run(["Some text."], SummarizeParams(engine="extractive"))
    assert isinstance(e, DocumentError) and e.kind == "wrong_model_kind"
    many = [f"category number {i} of the many" for i in range(200)]
    [e] = registry.get(CLASSIFY, llms["llama"], params={"labels": many}).run(["Some text."],
                                                                             ClassifyParams(labels=many))
    assert isinstance(e, DocumentError) and e.kind == "too_many_labels"
    hurried = Registry(Settings(model_dirs=[str(Path(llms["llama"]).parent)], device="cpu",
                                llm_document_timeout_s=1e-6))
    [e] = hurried.get(SUMMARIZE, llms["llama"], params={"engine": "llm"}).run(
        ["The buyer shall pay."], SummarizeParams(engine="llm"))
    assert isinstance(e, DocumentError) and e.kind == "generation_timeout"


class SmallDeviceLM(CausalLM):
    """The tiny model with the memory of a small device: generating for more than ``limit`` prompts
    at once raises what PyTorch raises on a GPU."""

    limit = 10**9

    def generate(self, prompts: Any, max_new_tokens: int, deadline: float | None = None,
                 constraint: Any = None) -> list[Generation]:
        if len(prompts) > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate a batch of {len(prompts)}")
        return super().generate(prompts, max_new_tokens, deadline, constraint)


def test_out_of_memory_halves_the_batch(registry: Registry, llms: dict[str, str]) -> None:
    model = SmallDeviceLM(llms["llama"], None, torch.device("cpu"))
    engine = LLMSummarizer(model, registry.llm_limits())
    texts = [f"Document {i}. The buyer shall pay the invoice within {i} days." for i in range(6)]
    params = SummarizeParams(engine="llm", max_new_tokens=8)
    reference = run_engine(engine, texts, params)
    model.limit = 2
    report = RunReport()
    outcomes = run_engine(engine, texts, params, report)
    assert report.engine_runs > 1 and outcomes == reference  # split until it fit, same greedy summaries
    model.limit = 0  # not even one document fits: each fails alone, clearly
    failed = run_engine(engine, texts[:2], params)
    assert all(isinstance(o, DocumentError) and o.kind == "out_of_memory" for o in failed)


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_label_scores_through_the_shared_prompt_cache_are_exact(registry: Registry, llms: dict[str, str],
                                                                name: str) -> None:
    model = registry.llm(llms[name])
    prompts = [model.encode(d) for d in _docs(3)]
    answers = [model.encode(x) + model.eos_ids[:1] for x in ("invoice", "news", "a much longer label")]
    scored = model.sequence_logprobs(prompts, answers)
    for p, row in zip(prompts, scored, strict=True):
        for a, value in zip(answers, row, strict=True):  # one unpadded pass over prompt + answer
            with torch.inference_mode():
                logits = model.model(input_ids=torch.tensor([p + a])).logits[0].float()
            logp = torch.log_softmax(logits[len(p) - 1:len(p) - 1 + len(a)], dim=-1)
            assert value == pytest.approx(float(logp[torch.arange(len(a)), torch.tensor(a)].sum()), abs=1e-3)


def test_the_llm_params_are_typed_and_checked_before_any_engine_runs() -> None:
    summarize = SummarizeParams.of({"engine": "llm", "style": "tldr", "max_words": 40, "summary_language": "German",
                                    "max_new_tokens": 64})
    assert summarize.wire() == {"engine": "llm", "style": "tldr", "max_words": 40, "summary_language": "German",
                                "max_new_tokens": 64}
    assert TranslateParams.of({"to": "de", "max_new_tokens": 9}).max_new_tokens == 9
    for raw, name in (({"engine": "llm", "summary_language": "Klingonese"}, "summary_language"),
                      ({"engine": "llm", "max_new_tokens": 0}, "max_new_tokens"),
                      ({"engine": "llm", "max_words": "30"}, "max_words")):
        with pytest.raises(ParamsError, match=name):
            SummarizeParams.of(raw)
    with pytest.raises(ParamsError, match="examples"):
        ClassifyParams.of({"labels": ["a", "b"], "engine": "llm", "examples": [{"text": "x", "label": "a"}]})
    assert ClassifyParams.of({"labels": ["a", "b"], "engine": "llm"}).engine == "llm"
