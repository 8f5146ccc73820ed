"""JSON-Schema constrained decoding for ``generate``, with llguidance: every answer of a batch is JSON
valid against the schema (or a valid prefix of it, when the new-token limit cuts it).

Usage, for any task that needs JSON (review; an OpenAI-style ``response_format: json_schema``)::

    constraint = json_schema_constraint(model, schema)         # compiled once per (tokenizer, schema), cached
    generations = model.generate(prompts, max_new_tokens, deadline, constraint=constraint)

``CausalLM.generate`` asks ``constraint.processor()`` for a fresh transformers ``LogitsProcessor`` per
static batch; outside docqueue's ``CausalLM`` pass ``constraint.processor()`` to ``model.generate(...,
logits_processor=[...])`` yourself, one per call. At every step each row's allowed next tokens
(llguidance's token mask for its grammar state) are the only ones the model may choose; the end
of sequence is allowed only where the JSON is complete. The answer is compact JSON (no whitespace
between tokens), which saves tokens. Greedy or sampled decoding both work; left padding is fine (the
processor reads only each row's last token).

Why llguidance, not xgrammar, outlines or lm-format-enforcer: ``docs/tasks/llm.md#constrained-decoding``
(measured with ``ops/bench/constrained.py``).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import llguidance
import llguidance.hf
import llguidance.torch
import torch
from transformers import LogitsProcessor, PreTrainedTokenizerFast

from docqueue.errors import DocumentError

#: Compiled constraints kept per process (each holds a grammar, small; the tokenizer is shared).
MAX_CACHED = 64
_lock = threading.Lock()
_tokenizers: dict[tuple[int, int, tuple[int, ...]], tuple[object, llguidance.LLTokenizer]] = {}
#: (id of the HF tokenizer, vocab size, stop tokens, schema) -> (that tokenizer, its constraint): the
#: tokenizer is kept and compared, so an id reused by another tokenizer never finds a stale grammar.
_constraints: dict[tuple[int, int, tuple[int, ...], str], tuple[object, JsonConstraint]] = {}
_pool: llguidance.LLExecutor | None = None


def _executor() -> llguidance.LLExecutor:
    """The process's thread pool for masks (llguidance's default size: 80% of the CPUs, at most 32)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = llguidance.LLExecutor()
        return _pool


class JsonConstraint:
    """A JSON Schema compiled for one tokenizer. Immutable and shared: :meth:`processor` makes the
    per-batch state."""

    def __init__(self, tokenizer: llguidance.LLTokenizer, grammar: str, vocab_size: int) -> None:
        self.tokenizer, self.grammar, self.vocab_size = tokenizer, grammar, vocab_size
        error = llguidance.LLMatcher.validate_grammar(grammar, tokenizer)
        if error and not error.startswith("WARNING"):
            raise ValueError(f"JSON Schema not supported by constrained decoding: {error}")

    def processor(self) -> SchemaLogitsProcessor:
        """A fresh logits processor for one ``generate`` call over one batch of prompts."""
        return SchemaLogitsProcessor(self)


class SchemaLogitsProcessor(LogitsProcessor):
    """Masks each row's logits to the tokens its grammar allows next. One instance per batch: the
    first call sees the prompts (and sets up one matcher per row), each later call first feeds every
    row's last generated token to its matcher."""

    def __init__(self, constraint: JsonConstraint) -> None:
        self.constraint = constraint
        self.matchers: list[llguidance.LLMatcher] = []
        self.mask: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        c = self.constraint
        if self.mask is None:
            self.matchers = [llguidance.LLMatcher(c.tokenizer, c.grammar) for _ in range(input_ids.shape[0])]
            self.mask = llguidance.torch.allocate_token_bitmask(input_ids.shape[0], c.vocab_size)
        else:
            last = input_ids[:, -1].tolist()
            for matcher, token in zip(self.matchers, last, strict=True):
                if not matcher.is_stopped() and not matcher.is_error():
                    matcher.consume_token(int(token))
        # a stopped or (never expected) failed matcher allows only the end of sequence
        if len(self.matchers) > 1:  # the rows' masks computed in parallel, off the GIL
            llguidance.torch.fill_next_token_bitmask_par(_executor(), list(zip(self.matchers, range(len(
                self.matchers)), strict=True)), self.mask)
        else:
            llguidance.torch.fill_next_token_bitmask(self.matchers[0], self.mask, 0)
        return _apply(scores, self.mask)


def _apply(scores: torch.FloatTensor, mask: torch.Tensor) -> torch.FloatTensor:
    """``scores`` with every token a row's bitmask (int32 words, bit k of word w = token 32w+k) does not
    allow set to -inf. Unpacked with plain tensor ops on the scores' device: llguidance's own
    ``apply_token_bitmask_inplace`` goes through ``torch.compile``, which costs a CPU worker seconds per
    process (12 s measured here) before its first constrained token."""
    words = mask.to(scores.device)
    shifts = torch.arange(32, dtype=torch.int32, device=scores.device)
    allowed = ((words.unsqueeze(-1) >> shifts) & 1).reshape(words.shape[0], -1)[:, :scores.shape[-1]].bool()
    return scores.masked_fill(~allowed, float("-inf"))  # type: ignore[return-value]


def _lltokenizer(tokenizer: PreTrainedTokenizerFast, vocab_size: int, eos_ids: tuple[int, ...]
                 ) -> llguidance.LLTokenizer:
    key = (id(tokenizer), vocab_size, eos_ids)
    held = _tokenizers.get(key)
    if held is None or held[0] is not tokenizer:
        held = (tokenizer, llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size,
                                                        eos_token=list(eos_ids) or None))
        _tokenizers[key] = held
    return held[1]


def json_schema_constraint(model: Any, schema: dict[str, Any]) -> JsonConstraint:
    """The constraint that holds ``model``'s answers to ``schema`` (a JSON Schema dict), cached per
    (tokenizer, schema).

    ``model`` is a resident :class:`workers.engines.llm.model.CausalLM` (its tokenizer, its stop
    tokens, and the width of its logits), or a fast Hugging Face tokenizer alone (its own eos token and
    length). Raises ``DocumentError('invalid_schema')`` for a schema llguidance cannot compile (an
    unsupported keyword, a bad ``$ref``)."""
    if isinstance(model, PreTrainedTokenizerFast):
        tokenizer, eos = model, (int(model.eos_token_id),) if model.eos_token_id is not None else ()
        vocab_size = len(model)
    else:
        tokenizer, eos = model.tokenizer, tuple(model.eos_ids)
        vocab_size = max(int(model.model.config.vocab_size), len(tokenizer))
    text = json.dumps(schema, sort_keys=True)
    key = (id(tokenizer), vocab_size, eos, text)
    with _lock:
        cached = _constraints.get(key)
        if cached is not None and cached[0] is tokenizer:
            return cached[1]
        grammar = llguidance.LLMatcher.grammar_from_json_schema(text, defaults={"whitespace_flexible": False})
        try:
            constraint = JsonConstraint(_lltokenizer(tokenizer, vocab_size, eos), grammar, vocab_size)
        except ValueError as e:
            raise DocumentError("invalid_schema", str(e)[:500]) from e
        if len(_constraints) >= MAX_CACHED:
            _constraints.pop(next(iter(_constraints)))
        _constraints[key] = (tokenizer, constraint)
        return constraint
