"""generate with a causal LM: one chat-completions request per document (docqueue.chat.ChatRequest).

The request's ``messages`` go through the model's chat template (a base model without one gets a
plain transcript ending in ``assistant:``). ``temperature`` 0 decodes greedily, and those requests
run together in length-sorted batches, one ``generate`` call per ``max_tokens`` value. A request
with ``temperature`` above 0 samples, and runs alone from a generator seeded with its ``seed``
(default: derived from the request's text), so its answer depends on the request only, never on
the batch it happened to share: a rerun gives the same answer, and the seed is in the provenance.

``response_format`` ``json_object`` and ``json_schema`` are held to their schema by constrained
decoding (``workers.engines.llm.constrained``, llguidance), plugged in at :func:`json_constraint`:
greedy requests with the same schema and ``max_tokens`` still run as one batch (the constraint is
compiled once per schema, and each static batch gets its own logits processor).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from docqueue.chat import ChatRequest, parse_request
from docqueue.errors import DocumentError
from docqueue.params import GenerateParams
from workers.engines import Outcome
from workers.engines.llm.common import MARGIN, Limits, Usage, deadline
from workers.engines.llm.constrained import JsonConstraint, json_schema_constraint
from workers.engines.llm.model import CausalLM, Generation, Sampling

KIND = "llm"
#: Most tokens of an answer when the request sets no max_tokens (within the worker's cap for generate).
DEFAULT_TOKENS = 512
#: The completion form of a model without a chat template: one line per turn, then the cue.
TRANSCRIPT_TURN = "{role}: {content}\n"
TRANSCRIPT_CUE = "assistant:"


def json_constraint(model: CausalLM, schema: dict[str, Any]) -> JsonConstraint:
    """The constraint that holds an answer to ``schema`` (``json_object``: ``{"type": "object"}``),
    compiled once per (tokenizer, schema); ``invalid_schema`` for a schema it cannot compile."""
    return json_schema_constraint(model, schema)


def derived_seed(text: str) -> int:
    """A request's default seed: the same request text, the same seed (63 bits, as OpenAI's ``seed``)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


class _Request:
    """One document's request, ready to generate: its prompt, limits and decoding."""

    def __init__(self, index: int, request: ChatRequest, prompt: list[int], new_tokens: int,
                 sampling: Sampling | None, constraint: JsonConstraint | None, usage: Usage) -> None:
        self.index, self.request, self.prompt, self.new_tokens = index, request, prompt, new_tokens
        self.sampling, self.constraint, self.usage = sampling, constraint, usage


class LLMGenerator:
    """Resident engine for ``generate``: chat completions with a causal LM."""

    engine = KIND

    def __init__(self, model: CausalLM, limits: Limits) -> None:
        self.model, self.limits = model, limits
        self.model_id, self.model_revision = model.spec, model.revision
        template = str(getattr(model.tokenizer, "chat_template", None) or TRANSCRIPT_TURN + TRANSCRIPT_CUE)
        self.template_sha256 = hashlib.sha256(template.encode("utf-8")).hexdigest()

    def prompt(self, request: ChatRequest) -> list[int]:
        """The request's messages as prompt tokens: the model's chat template, else a transcript."""
        turns = [m.plain() for m in request.messages]
        if self.model.chat:
            try:
                rendered = self.model.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
            except Exception as e:  # jinja's TemplateError, or a template's own raise_exception
                raise DocumentError("invalid_request", f"the model's chat template refuses these messages: "
                                    f"{type(e).__name__}: {e}") from None
            return self.model.encode(str(rendered))
        return self.model.encode("".join(TRANSCRIPT_TURN.format(**t) for t in turns) + TRANSCRIPT_CUE)

    def _prepare(self, index: int, text: str) -> _Request:
        request = parse_request(text)
        cap = int(self.limits.max_new_tokens.get("generate", DEFAULT_TOKENS))
        new_tokens = min(DEFAULT_TOKENS, cap) if request.new_tokens is None else request.new_tokens
        if new_tokens > cap:
            raise DocumentError("too_many_new_tokens", f"max_tokens {new_tokens} is over this worker's limit for "
                                f"generate ({cap}, DOCQUEUE_LLM_MAX_NEW_TOKENS)")
        prompt = self.prompt(request)
        if len(prompt) + new_tokens + MARGIN > self.model.context:
            raise DocumentError("prompt_too_long", f"the messages ({len(prompt)} tokens) and {new_tokens} new tokens "
                                f"do not fit the model's {self.model.context}-token context; ask for fewer max_tokens "
                                "or send shorter messages")
        schema = request.response_format.answer_schema() if request.response_format else None
        constraint = json_constraint(self.model, schema) if schema is not None else None
        sampling = None if request.temperature == 0 else Sampling(
            request.temperature, request.top_p, request.seed if request.seed is not None else derived_seed(text))
        usage = Usage("generate.messages", self.template_sha256, "chat" if self.model.chat else "completion",
                      settings={"do_sample": sampling is not None, "num_beams": 1, "max_new_tokens": new_tokens,
                                **({"temperature": sampling.temperature, "top_p": sampling.top_p,
                                    "seed": sampling.seed} if sampling else {})})
        return _Request(index, request, prompt, new_tokens, sampling, constraint, usage)

    def run(self, texts: Sequence[str], params: GenerateParams) -> list[Outcome]:
        outcomes: list[Outcome] = [DocumentError("engine_error", "not generated") for _ in texts]
        ready: list[_Request] = []
        for i, text in enumerate(texts):
            try:
                ready.append(self._prepare(i, text))
            except DocumentError as e:
                outcomes[i] = e
        until = deadline(self.limits)
        # greedy requests batch together, one call per (max_tokens, schema); sampled ones run alone
        batched: dict[tuple[int, int], list[_Request]] = {}
        alone: list[_Request] = []
        for r in ready:
            if r.sampling:
                alone.append(r)
            else:
                batched.setdefault((r.new_tokens, id(r.constraint)), []).append(r)
        groups = [*batched.values(), *([r] for r in alone)]
        for group in groups:
            first = group[0]
            try:
                generated = self.model.generate([r.prompt for r in group], first.new_tokens, until,
                                                constraint=first.constraint, sampling=first.sampling)
            except DocumentError as e:  # the time limit: this group and every later one fail with it
                for r in (r for g in groups[groups.index(group):] for r in g):
                    outcomes[r.index] = e
                break
            for r, g in zip(group, generated, strict=True):
                outcomes[r.index] = self._result(r, g)
        return outcomes

    def _result(self, r: _Request, g: Generation) -> dict[str, Any]:
        r.usage.add(g)
        r.usage.finish_reason = g.finish_reason
        return {"content": g.text, "finish_reason": g.finish_reason,
                "response_format": r.request.response_format.type if r.request.response_format else "text",
                "usage": {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens,
                          "total_tokens": g.prompt_tokens + g.completion_tokens},
                "engine": KIND, "llm": r.usage.as_json(self.model)}
