"""JSON-Schema constrained decoding libraries compared: xgrammar, llguidance, outlines (outlines_core)
and lm-format-enforcer, on the review answer schema (workers/engines/llm/review_answer.py, 41 CUAD
categories).

For each library and each vocabulary (the tiny test model's 1,500 tokens, and a synthetic byte-level
vocabulary of ``--big-vocab`` tokens, 150k by default, the size of Qwen2.5's):

- ``compile_s``: tokenizer set-up plus schema compilation, what a worker pays once per (tokenizer, schema);
- ``schema_s``: one more schema (the answer schema for 5 categories) with the tokenizer already set up:
  what every new schema costs (the ``generate`` task's ``response_format``: one per request);
- ``first_mask_s``: the first token's mask of a fresh matcher (lazy grammar construction shows here);
- ``mask_us``: mean time to compute one row's allowed-token mask and accept the token over the other
  tokens of a valid answer, replayed (what every generated token of every row costs on top of the model);
- ``batch_ok`` (tiny model only): a batch of ``--batch`` prompts generated greedily by the tiny random
  Llama with the library's constraint; how many answers parse and validate against the schema.

The libraries other than the one docqueue uses are not dependencies: install them in a separate
environment (``pip install xgrammar llguidance outlines lm-format-enforcer``). Usage::

    python ops/bench/constrained.py [--big-vocab 150000] [--batch 8] [--new-tokens 200]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

ANSWER = {"clauses": [{"category": "Governing Law", "quote": "This Agreement shall be governed by the laws of "
                       "the State of New York."}, {"category": "Parties", "quote": "between Acme Corp. and Beta "
                                                   "LLC, each a party"}],
          "fields": {"parties": ["Acme Corp.", "Beta LLC"], "agreement_date": "2020-01-31", "effective_date": None,
                     "expiration_date": "perpetual", "governing_law": "New York", "renewal_term": "P1Y",
                     "notice_period_to_terminate_renewal": "P90D"},
          "risks": [{"flag": "auto_renewal", "severity": "medium", "quote": "renews automatically for one year"}]}


def big_tokenizer(size: int, folder: Path) -> Any:
    """A byte-level BPE tokenizer with ``size`` tokens: the 256 bytes, English-like pieces with and
    without a leading space, digits and punctuation runs (no merges: only the vocabulary matters here)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    rng = random.Random(0)
    vocab: dict[str, int] = {}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    while len(vocab) < size - 1:
        kind = rng.random()
        if kind < 0.8:
            piece = "".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
            piece = ("Ġ" + piece) if rng.random() < 0.5 else piece
        elif kind < 0.9:
            piece = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 3)))
        else:
            piece = "".join(rng.choice('.,;:"{}[]()-Ġ') for _ in range(rng.randint(2, 4)))
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(folder)
    return fast


class Library:
    """One library behind the three operations the benchmark times."""

    name = ""

    def __init__(self, tokenizer: Any, vocab: int, eos: int, schema: dict[str, Any]) -> None:
        self.tokenizer, self.vocab, self.eos, self.schema = tokenizer, vocab, eos, schema

    def compile(self) -> None: ...

    def another(self, schema: dict[str, Any]) -> None: ...  # one more schema, the tokenizer set up

    def replay(self, tokens: list[int]) -> int: ...  # masks computed

    def processor(self) -> Any: ...  # a transformers LogitsProcessor (or prefix_allowed_tokens_fn)


class XGrammar(Library):
    name = "xgrammar"

    def compile(self) -> None:
        import xgrammar as xgr

        info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self.vocab, stop_token_ids=[self.eos])
        self.compiler = xgr.GrammarCompiler(info, cache_enabled=False)
        self.compiled = self.compiler.compile_json_schema(
            json.dumps(self.schema), any_whitespace=False, separators=(",", ":"))

    def another(self, schema: dict[str, Any]) -> None:
        self.compiler.compile_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"))

    def replay(self, tokens: list[int]) -> int:
        import xgrammar as xgr

        matcher = xgr.GrammarMatcher(self.compiled)
        mask = xgr.allocate_token_bitmask(1, self.vocab)
        for t in tokens:
            matcher.fill_next_token_bitmask(mask, 0)
            assert matcher.accept_token(t), t
        return len(tokens)

    def processor(self) -> Any:
        import xgrammar as xgr

        return xgr.contrib.hf.LogitsProcessor(self.compiled)


class LLGuidance(Library):
    name = "llguidance"

    def compile(self) -> None:
        import llguidance
        import llguidance.hf

        self.lltok = llguidance.hf.from_tokenizer(self.tokenizer, n_vocab=self.vocab, eos_token=self.eos)
        self.grammar = llguidance.LLMatcher.grammar_from_json_schema(
            self.schema, defaults={"whitespace_flexible": False})
        matcher = llguidance.LLMatcher(self.lltok, self.grammar)  # the grammar is built here
        assert not matcher.is_error(), matcher.get_error()

    def another(self, schema: dict[str, Any]) -> None:
        import llguidance

        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})
        llguidance.LLMatcher(self.lltok, grammar)

    def replay(self, tokens: list[int]) -> int:
        import llguidance
        import llguidance.torch

        matcher = llguidance.LLMatcher(self.lltok, self.grammar)
        mask = llguidance.torch.allocate_token_bitmask(1, self.vocab)
        for t in tokens:
            llguidance.torch.fill_next_token_bitmask(matcher, mask, 0)
            assert matcher.consume_token(t), matcher.get_error()
        return len(tokens)

    def processor(self) -> Any:
        from workers.engines.llm.constrained import JsonConstraint

        return JsonConstraint(self.lltok, self.grammar, self.vocab).processor()


class OutlinesCore(Library):
    name = "outlines"

    def compile(self) -> None:
        from outlines_core import Index, Vocabulary
        from outlines_core.json_schema import build_regex_from_schema

        regex = build_regex_from_schema(json.dumps(self.schema), whitespace_pattern="")
        self.vocabulary = self._vocabulary(Vocabulary)
        self.index = Index(regex, self.vocabulary)

    def another(self, schema: dict[str, Any]) -> None:
        from outlines_core import Index
        from outlines_core.json_schema import build_regex_from_schema

        Index(build_regex_from_schema(json.dumps(schema), whitespace_pattern=""), self.vocabulary)

    def _vocabulary(self, vocabulary_class: Any) -> Any:
        from outlines.models.transformers import TransformerTokenizer

        wrapped = TransformerTokenizer(self.tokenizer)
        tokens: dict[str, list[int]] = {}
        for token, tid in self.tokenizer.get_vocab().items():
            if tid == self.eos:
                continue
            tokens.setdefault(wrapped.convert_token_to_string(token), []).append(tid)
        return vocabulary_class(self.eos, tokens)

    def replay(self, tokens: list[int]) -> int:
        from outlines_core import Guide

        guide = Guide(self.index)
        for t in tokens[:-1]:  # the end of sequence is not a transition: the guide must be finished there
            allowed = guide.get_tokens()
            assert t in allowed, t
            guide.advance(t)
        return len(tokens)

    def processor(self) -> Any:
        from outlines.backends.outlines_core import OutlinesCoreLogitsProcessor

        return OutlinesCoreLogitsProcessor(self.index, "torch")


class LMFormatEnforcer(Library):
    name = "lm-format-enforcer"

    def compile(self) -> None:
        import transformers.tokenization_utils_base

        # lm-format-enforcer 0.11.3 imports transformers.tokenization_utils, which transformers 5 removed
        sys.modules.setdefault("transformers.tokenization_utils", transformers.tokenization_utils_base)
        from lmformatenforcer.integrations.transformers import build_token_enforcer_tokenizer_data

        self.data = build_token_enforcer_tokenizer_data(self.tokenizer, vocab_size=self.vocab)

    def another(self, schema: dict[str, Any]) -> None:
        from lmformatenforcer import JsonSchemaParser, TokenEnforcer

        TokenEnforcer(self.data, JsonSchemaParser(schema)).get_allowed_tokens([])

    def _enforcer(self) -> Any:
        from lmformatenforcer import JsonSchemaParser, TokenEnforcer

        return TokenEnforcer(self.data, JsonSchemaParser(self.schema))

    def replay(self, tokens: list[int]) -> int:
        enforcer = self._enforcer()
        for k, t in enumerate(tokens):
            allowed = enforcer.get_allowed_tokens(tokens[:k])
            assert t in allowed.allowed_tokens if hasattr(allowed, "allowed_tokens") else t in allowed, t
        return len(tokens)

    def processor(self) -> Any:
        from lmformatenforcer import JsonSchemaParser
        from lmformatenforcer.integrations.transformers import build_transformers_prefix_allowed_tokens_fn

        return build_transformers_prefix_allowed_tokens_fn(self.data, JsonSchemaParser(self.schema))


LIBRARIES: list[type[Library]] = [XGrammar, LLGuidance, OutlinesCore, LMFormatEnforcer]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    value = fn()
    return time.perf_counter() - began, value


def batch_check(lib: Library, model_dir: Path, batch: int, new_tokens: int) -> tuple[int, float]:
    """Answers of a batch that validate, and the generation's seconds."""
    import jsonschema
    import torch
    from transformers import AutoModelForCausalLM, LogitsProcessorList

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok = lib.tokenizer
    tok.padding_side = "left"
    prompts = [tok.apply_chat_template([{"role": "user", "content": f"Review contract {i}: the buyer shall pay."}],
                                       add_generation_prompt=True, tokenize=False) for i in range(batch)]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    processor = lib.processor()
    extra: dict[str, Any] = ({"prefix_allowed_tokens_fn": processor} if lib.name == "lm-format-enforcer"
                             else {"logits_processor": LogitsProcessorList([processor])})
    with torch.inference_mode():
        seconds, out = timed(lambda: model.generate(**enc, max_new_tokens=new_tokens, do_sample=False,
                                                    eos_token_id=lib.eos, pad_token_id=tok.pad_token_id, **extra))
    ok = 0
    validator = jsonschema.Draft202012Validator(lib.schema)
    for row in out[:, enc["input_ids"].shape[1]:]:
        text = tok.decode(row, skip_special_tokens=True)
        try:
            validator.validate(json.loads(text))
            ok += 1
        except (ValueError, jsonschema.ValidationError):
            pass
    return ok, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--big-vocab", type=int, default=150_000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=400)
    parser.add_argument("--only", nargs="*", default=None, help="library names")
    parser.add_argument("--tiny-only", action="store_true", help="skip the big vocabulary")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from docqueue.contract_categories import CUAD_CATEGORIES
    from tests.tiny_llms import build_llama_chat
    from workers.engines.llm.review_answer import answer_schema

    schema = answer_schema(CUAD_CATEGORIES)
    other = answer_schema(CUAD_CATEGORIES[:5])  # a second schema: what each new schema costs
    with tempfile.TemporaryDirectory() as tmp:
        tiny_dir = build_llama_chat(Path(tmp) / "tiny")
        tiny = AutoTokenizer.from_pretrained(tiny_dir)
        big = big_tokenizer(args.big_vocab, Path(tmp) / "big")
        answer = json.dumps(ANSWER, separators=(",", ":"))
        for lib_class in LIBRARIES:
            if args.only and lib_class.name not in args.only:
                continue
            vocabs = [("tiny 1.5k", tiny)] + ([] if args.tiny_only else [(f"synthetic {len(big) // 1000}k", big)])
            for label, tok in vocabs:
                eos = tok.convert_tokens_to_ids("<|im_end|>" if tok is tiny else "<|endoftext|>")
                lib = lib_class(tok, len(tok), eos, schema)
                row: dict[str, Any] = {"library": lib.name, "vocab": label}
                try:
                    row["compile_s"], _ = timed(lib.compile)
                    row["schema_s"] = round(timed(lambda lib=lib: lib.another(other))[0], 3)  # type: ignore[misc]
                    tokens = [*tok.encode(answer, add_special_tokens=False), eos]
                    first, _ = timed(lambda lib=lib, tokens=tokens: lib.replay(tokens[:1]))  # type: ignore[misc]
                    seconds, n = timed(lambda lib=lib, tokens=tokens: lib.replay(tokens))  # type: ignore[misc]
                    row["first_mask_s"] = round(first, 3)
                    row["mask_us"] = round((seconds - first) / (n - 1) * 1e6, 1)
                    if tok is tiny:
                        ok, gen_s = batch_check(lib, tiny_dir, args.batch, args.new_tokens)
                        row["batch_ok"], row["generate_s"] = f"{ok}/{args.batch}", round(gen_s, 2)
                except Exception as e:  # a library that fails is a finding, not a crash of the benchmark
                    row["error"] = f"{type(e).__name__}: {str(e)[:200]}"
                row["compile_s"] = round(row.get("compile_s", float("nan")), 3)
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
