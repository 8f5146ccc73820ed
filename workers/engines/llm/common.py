"""What the LLM engine's tasks share: the limits, the prompt tokens, windows sized to the context,
and the provenance every result carries."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from docqueue.errors import DocumentError
from workers.engines.chunking import pack, split_sentences
from workers.engines.llm.model import CausalLM, Generation
from workers.engines.llm.prompts import fill, template_sha256

#: Tokens kept free between a prompt plus its new tokens and the context (templates add a few
#: tokens around the turn that a rendering of the parts alone does not count exactly).
MARGIN = 8
#: A window shorter than this leaves the model too little of the document to work on.
MIN_WINDOW_TOKENS = 32


@dataclass(frozen=True)
class Limits:
    """The worker's limits (settings), per process."""

    max_new_tokens: Mapping[str, int]  # task -> most new tokens one generation may ask for
    document_timeout_s: float  # wall-clock seconds of generation per document


@dataclass
class Usage:
    """One document's provenance, summed over its windows and rounds."""

    template_id: str
    template_sha256: str
    form: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    settings: dict[str, Any] = field(default_factory=dict)

    def add(self, g: Generation) -> None:
        self.prompt_tokens += g.prompt_tokens
        self.completion_tokens += g.completion_tokens

    def as_json(self, model: CausalLM) -> dict[str, Any]:
        return {"model": model.spec, "revision": model.revision,
                "template": {"id": self.template_id, "sha256": self.template_sha256, "form": self.form},
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "finish_reason": self.finish_reason, "generation": self.settings}


class Prompter:
    """Renders built-in templates for one model: its chat template, or the completion form."""

    def __init__(self, model: CausalLM) -> None:
        self.model = model

    def tokens(self, template_id: str, **fields: str) -> list[int]:
        text = fill(template_id, self.model.chat, **fields)
        if self.model.chat:
            rendered = self.model.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False)
            text = str(rendered)
        return self.model.encode(text)

    def overhead(self, template_id: str, **fields: str) -> int:
        """Tokens of the prompt around an empty document."""
        return len(self.tokens(template_id, **{**fields, "document": ""}))

    def usage(self, template_id: str, **settings: Any) -> Usage:
        return Usage(template_id, template_sha256(template_id, self.model.chat),
                     "chat" if self.model.chat else "completion", settings=settings)

    def windows(self, text: str, budget: int, language: str = "en") -> list[str]:
        """The document in consecutive windows of at most ``budget`` tokens, cut between sentences
        (within an over-long sentence, between words): all of it, never a silently cut prefix."""
        def count(parts: Sequence[str]) -> list[int]:
            return [len(self.model.encode(p)) for p in parts]

        return pack(split_sentences(text, language), count, budget)


class PromptedEngine:
    """What the engines that fill built-in templates keep resident: the model, the worker's limits,
    the provenance ids every result names, and the model's prompter."""

    def __init__(self, model: CausalLM, limits: Limits) -> None:
        self.model, self.limits = model, limits
        self.model_id, self.model_revision = model.spec, model.revision
        self.prompter = Prompter(model)


def max_new_tokens(value: int | None, task: str, limits: Limits, default: int) -> int:
    """The submission's ``max_new_tokens`` (already a positive integer, ``docqueue.params``; default:
    ``default`` within the cap), refused with ``too_many_new_tokens`` above the worker's cap for the task."""
    cap = int(limits.max_new_tokens.get(task, default))
    if value is None:
        return min(default, cap)
    if value > cap:
        raise DocumentError("too_many_new_tokens", f"max_new_tokens {value} is over this worker's limit for "
                            f"{task} ({cap}, DOCQUEUE_LLM_MAX_NEW_TOKENS)")
    return value


def window_budget(model: CausalLM, overhead: int, new_tokens: int) -> int:
    """Document tokens one prompt may hold; ``prompt_too_long`` when the instructions alone leave
    no room for a window."""
    budget = model.context - overhead - new_tokens - MARGIN
    if budget < MIN_WINDOW_TOKENS:
        raise DocumentError("prompt_too_long", f"the prompt ({overhead} tokens) and {new_tokens} new tokens leave "
                            f"{max(budget, 0)} of the model's {model.context}-token context for the document; "
                            "ask for fewer new tokens or shorter instructions")
    return budget


def deadline(limits: Limits) -> float:
    return time.monotonic() + limits.document_timeout_s
