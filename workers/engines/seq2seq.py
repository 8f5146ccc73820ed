"""A resident encoder-decoder model (BART, Marian, T5...) that turns texts into texts.

Loaded with ``AutoModelForSeq2SeqLM.from_pretrained`` from a hub id (through the HF cache, like any
transformers program) or a local folder: tests load tiny local models through this very code.
Inputs are generated in length-sorted, padded batches bounded by a token budget, so one long chunk
does not make a whole batch pay for its padding.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

from docqueue.errors import ModelUnavailableError
from workers.engines.embedding import OFFLINE_MINILM
from workers.engines.forward import observe_inputs
from workers.engines.runtime import runtime_name

#: Generation options a submission may set; anything else in params is ignored by ``generate``.
GENERATION_OPTIONS = ("num_beams", "max_length", "min_length", "length_penalty", "no_repeat_ngram_size")


def unavailable(spec: str, error: BaseException) -> ModelUnavailableError:
    """The one message for a model that cannot be loaded here: which model, why, how to get it."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ModelUnavailableError(
        f"model {spec!r} is not available on this machine ({reason[:200]}); fetch it with "
        f"`docqueue models pull {spec}` where a hub is reachable, or configure a local path")


def is_seq2seq(spec: str, revision: str | None = None) -> bool:
    """Whether ``spec`` names an encoder-decoder model (reads only its config)."""
    if spec == OFFLINE_MINILM:
        return False
    try:
        config = AutoConfig.from_pretrained(spec, revision=revision)
    except (OSError, ValueError) as e:
        raise unavailable(spec, e) from e
    return bool(getattr(config, "is_encoder_decoder", False))


class Seq2SeqModel:
    """Tokenizer + model, resident on one device."""

    def __init__(self, spec: str, revision: str | None, device: torch.device, batch_tokens: int = 8192,
                 dtype: torch.dtype = torch.float32) -> None:
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(spec, revision=revision)
            model = AutoModelForSeq2SeqLM.from_pretrained(spec, revision=revision, dtype=dtype)
        except (OSError, ValueError, ImportError) as e:
            raise unavailable(spec, e) from e
        self.model = model.to(device).eval()
        self.device = device
        self.spec = spec
        self.runtime = runtime_name(device, dtype)
        commit = getattr(model.config, "_commit_hash", None)
        self.revision = revision or (str(commit) if commit else None)
        self.batch_tokens = batch_tokens
        positions = int(getattr(model.config, "max_position_embeddings", 0) or 0) or 10**9
        declared = int(getattr(self.tokenizer, "model_max_length", 0) or 0) or 10**9
        self.max_input_tokens = min(positions, declared, 4096)
        self.tokenizer.model_max_length = 10**9  # we count long texts to chunk them; silence the warning
        self.special_tokens = len(self.tokenizer("")["input_ids"])
        # Chunks hold at most this many tokens of text; the rest of the window is for special
        # tokens and for tokenisation differences between counting sentences and counting a chunk.
        self.chunk_budget = max(8, self.max_input_tokens - self.special_tokens - max(4, self.max_input_tokens // 32))

    @property
    def memory_bytes(self) -> int:
        """Bytes the weights take in memory: what a memory budget for resident models counts."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        ids = self.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(x) for x in ids]

    def generation_config(self, options: Mapping[str, Any]) -> Any:
        """The model's own generation defaults with the submission's options on top."""
        config = copy.deepcopy(self.model.generation_config)
        for key in GENERATION_OPTIONS:
            value = options.get(key)
            if value is not None:
                setattr(config, key, value)
        if options.get("max_length") is not None:
            config.max_length = int(options["max_length"]) + 1  # + the decoder start token
        if (config.min_length or 0) >= (config.max_length or 0):
            config.min_length = 0
        return config

    @torch.inference_mode()
    def generate(self, texts: Sequence[str], options: Mapping[str, Any] | None = None) -> list[str]:
        """One output text per input text, in order."""
        if not texts:
            return []
        config = self.generation_config(options or {})
        lengths = self.count_tokens(texts)
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        # padded input x beams x (input + output) tokens is what a batch really costs
        per_token = max(1, int(config.num_beams or 1))
        out: list[str] = [""] * len(texts)
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order):
                # an output is rarely much longer than twice its input (translation) and never
                # longer than max_length (summaries)
                n = min(lengths[order[end]], self.max_input_tokens)
                width = n + min(int(config.max_length or 0), 2 * n + 16)
                if width * per_token * (end - start + 1) > self.batch_tokens:
                    break
                end += 1
            idx = order[start:end]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                 max_length=self.max_input_tokens, return_tensors="pt")
            observe_inputs(enc)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            generated = self.model.generate(**enc, generation_config=config)
            for i, text in zip(idx, self.tokenizer.batch_decode(generated, skip_special_tokens=True), strict=True):
                out[i] = text.strip()
            start = end
        return out
