"""A resident causal LM (GPT-2, Llama, Qwen, Mistral, Gemma...) and its tokenizer, on one device.

Loaded once per worker process with ``AutoModelForCausalLM`` (in the dtype the loader chooses for the
device: bf16/fp16 on CUDA, float32 on the CPU),
from a hub id through the HF cache or a local folder. Two operations serve every task:

- :meth:`CausalLM.generate`: greedy continuations of many prompts in left-padded static batches
  bounded by a token budget (prompt plus new tokens), sorted by length so a long prompt does not make
  a batch of short ones pay for its padding; each with its token counts and finish reason;
- :meth:`CausalLM.sequence_logprobs`: the log-probability of given continuations after a prompt, the
  exact form of constrained decoding over a finite set of answers (classify's labels).

Static batches, not transformers' continuous batching (``generate_batch``): see docs/tasks/llm.md and
ops/bench/llm.py for the measurement on this machine's CPU.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from docqueue.errors import DocumentError, ModelUnavailableError

if TYPE_CHECKING:
    from workers.engines.llm.constrained import JsonConstraint
from workers.engines.forward import observe_inputs

#: Context assumed when neither the config nor the tokenizer states one.
FALLBACK_CONTEXT = 2048


@dataclass(frozen=True)
class Generation:
    """One prompt's continuation and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop": the model ended it; "length": max new tokens reached


@dataclass(frozen=True)
class Sampling:
    """Sampling instead of greedy decoding: at ``temperature`` (> 0), nucleus ``top_p``, seeded."""

    temperature: float
    top_p: float
    seed: int


def unavailable(spec: str, error: BaseException) -> ModelUnavailableError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ModelUnavailableError(
        f"model {spec!r} is not available on this machine ({reason[:200]}); fetch it with "
        f"`docqueue models pull {spec}` where a hub is reachable, or configure a local path")


class CausalLM:
    """Tokenizer + decoder-only model, resident on one device."""

    def __init__(self, spec: str, revision: str | None, device: torch.device, batch_tokens: int = 8192,
                 dtype: torch.dtype | None = None) -> None:
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(spec, revision=revision)
            model = AutoModelForCausalLM.from_pretrained(spec, revision=revision,
                                                         dtype=dtype if dtype is not None else torch.float32)
        except (OSError, ValueError, ImportError) as e:
            raise unavailable(spec, e) from e
        self.model = model.to(device).eval()  # type: ignore[arg-type]
        self.device = device
        self.spec = spec
        commit = getattr(model.config, "_commit_hash", None)
        self.revision = revision or (str(commit) if commit else None)
        self.batch_tokens = batch_tokens
        self.tokenizer.padding_side = "left"
        eos = model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos_ids:
            eos_ids.append(self.tokenizer.eos_token_id)
        self.eos_ids: list[int] = [int(i) for i in eos_ids]
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else (self.eos_ids[0] if self.eos_ids else 0)
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        self.context = self._context()

    def _context(self) -> int:
        config = self.model.config
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        limit = getattr(self.tokenizer, "model_max_length", None)
        return int(limit) if isinstance(limit, int) and 0 < limit < 10**7 else FALLBACK_CONTEXT

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def _batches(self, lengths: Sequence[int], extra: int) -> list[list[int]]:
        """Indexes grouped into batches whose padded size (longest + ``extra``) x rows fits the budget."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            if current and (lengths[i] + extra) * (len(current) + 1) > self.batch_tokens:
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def _left_padded(self, rows: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask of one static batch, padded on the left (decoder-only models
        continue from the last position, so every row must end there); observed for the memory guard."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, tokens in enumerate(rows):
            ids[row, width - len(tokens):] = torch.tensor(tokens, dtype=torch.long)
            mask[row, width - len(tokens):] = 1
        observe_inputs({"input_ids": ids, "attention_mask": mask})
        return ids, mask

    @torch.inference_mode()
    def generate(self, prompts: Sequence[list[int]], max_new_tokens: int, deadline: float | None = None,
                 constraint: JsonConstraint | None = None, sampling: Sampling | None = None) -> list[Generation]:
        """Greedy continuations of tokenised prompts (``max_new_tokens`` each), in order; with
        ``sampling``, sampled instead, from a generator seeded with ``sampling.seed`` (the caller
        runs one prompt per call where each answer must not depend on its batch).

        ``constraint`` (:func:`workers.engines.llm.constrained.json_schema_constraint`) holds every
        answer to a JSON Schema: each static batch gets a fresh logits processor from it.

        ``deadline`` (``time.monotonic()``) stops generating once passed: every row of the batch then
        raises ``generation_timeout`` (the per-document limit; the batch runs together, so a batch
        that exceeds it fails its documents, each with the same clear message)."""
        out: list[Generation | None] = [None] * len(prompts)
        for idx in self._batches([len(p) for p in prompts], max_new_tokens):
            ids, mask = self._left_padded([prompts[i] for i in idx])
            stopping = [_Deadline(deadline)] if deadline is not None else []
            from transformers import LogitsProcessorList, StoppingCriteriaList

            decoding: dict[str, object] = {"do_sample": False}
            if sampling is not None:
                decoding = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [],
                                       enabled=sampling is not None):
                if sampling is not None:
                    torch.manual_seed(sampling.seed)
                generated = self.model.generate(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device), max_new_tokens=max_new_tokens,
                    num_beams=1, eos_token_id=self.eos_ids or None, pad_token_id=self.pad_id,
                    stopping_criteria=StoppingCriteriaList(stopping),
                    logits_processor=LogitsProcessorList([constraint.processor()] if constraint else []), **decoding)
            if deadline is not None and time.monotonic() > deadline:
                raise DocumentError("generation_timeout", "generation ran past the per-document time limit "
                                    "(DOCQUEUE_LLM_DOCUMENT_TIMEOUT_S)")
            for row, i in enumerate(idx):
                new = generated[row, ids.shape[1]:].tolist()
                stop = next((k for k, t in enumerate(new) if t in self.eos_ids), None)
                tokens = new[:stop] if stop is not None else new
                out[i] = Generation(str(self.tokenizer.decode(tokens, skip_special_tokens=True)), len(prompts[i]),
                                    len(tokens), "stop" if stop is not None else "length")
        return [g for g in out if g is not None]

    @torch.inference_mode()
    def sequence_logprobs(self, prompts: Sequence[list[int]], continuations: Sequence[list[int]]
                          ) -> list[list[float]]:
        """For every prompt, the sum of log-probabilities of each continuation's tokens after it: a
        finite set of answers decoded exactly (every answer scored, none outside the set possible).

        Each prompt runs once (left-padded batches, KV cache kept); its cache is then repeated for
        the continuations, which run as short rows on top of it. Scoring N labels thus costs one
        pass over the document, not N."""
        n = len(continuations)
        longest = max(len(c) for c in continuations)
        scores = [[0.0] * n for _ in prompts]
        for idx in self._batches([len(p) for p in prompts], n * longest):
            ids, mask = self._left_padded([prompts[i] for i in idx])
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                             position_ids=positions.to(self.device), use_cache=True)
            first = torch.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()
            rest = None
            if longest > 1:
                cache = out.cache if "cache" in out else out.past_key_values
                cache.batch_repeat_interleave(n)
                tail = torch.full((len(idx) * n, longest - 1), self.pad_id, dtype=torch.long)
                tail_mask = torch.zeros_like(tail)
                for r in range(len(idx) * n):
                    tokens = continuations[r % n][:-1]
                    tail[r, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                    tail_mask[r, :len(tokens)] = 1
                lengths = mask.sum(-1).repeat_interleave(n).unsqueeze(1)
                tail_positions = lengths + torch.arange(longest - 1).unsqueeze(0)
                attention = torch.cat([mask.repeat_interleave(n, dim=0), tail_mask], dim=1)
                rest = torch.log_softmax(self.model(
                    input_ids=tail.to(self.device), attention_mask=attention.to(self.device),
                    position_ids=tail_positions.to(self.device), cache=cache).logits.float(), dim=-1).cpu()
            for row, i in enumerate(idx):
                for c, tokens in enumerate(continuations):
                    value = float(first[row, tokens[0]])
                    if rest is not None and len(tokens) > 1:
                        at = torch.arange(len(tokens) - 1)
                        value += float(rest[row * n + c, at, torch.tensor(tokens[1:], dtype=torch.long)].sum())
                    scores[i][c] = value
        return scores


class _Deadline:
    """A stopping criterion: stop every row once the wall clock passes the deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
        done = time.monotonic() > self.deadline
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)
