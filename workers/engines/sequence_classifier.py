"""Models with a classification head (``AutoModelForSequenceClassification``): loading them, telling
which engine a model needs from its config, running token windows, and the fine-tuned engine.

A fine-tuned classifier knows its labels (``config.id2label``); labels a user sends are not needed
and are ignored. A document longer than the model's window is cut into windows (up to
``max_windows``) whose logits are averaged, so the whole of a long document votes. Scores follow
how the model was trained: a multi-label model (``problem_type == "multi_label_classification"``)
gets independent sigmoids, a single-label model a softmax; ``--multi-label`` on a single-label model
then lists every label whose softmax probability reaches the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig

from docqueue.classifier_config import classify_engine_for
from docqueue.classifier_config import nli_label_ids as label_ids_of
from docqueue.errors import ModelUnavailableError
from docqueue.params import ClassifyParams
from workers.engines import Outcome
from workers.engines.classify_common import classification, start_outcomes
from workers.engines.embedding import ModelRef
from workers.engines.forward import observe_inputs
from workers.engines.runtime import runtime_name
from workers.engines.windows import token_prefix, window_chars


def _unavailable(ref: ModelRef, what: str, err: Exception) -> ModelUnavailableError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ModelUnavailableError(
        f"cannot load {what} {ref.spec!r}: {first} — fetch it into the HF cache (HF_HOME) with "
        f"`docqueue models pull {ref.spec}` where a hub is reachable, or pass a local path with --model")


def nli_label_ids(config: PretrainedConfig) -> tuple[int, int] | None:
    """(entailment id, contradiction id) of an NLI model's head, else None."""
    return label_ids_of(config.id2label)


def classifier_kind(ref: ModelRef) -> str:
    """Which classify engine a model needs, from its ``config.json`` alone (no weights loaded):
    a classification head with entailment labels -> ``nli``; any other classification head ->
    ``fine-tuned``; a bare encoder (sentence-embedding model) -> ``embedding``."""
    try:
        config = AutoConfig.from_pretrained(ref.location, revision=ref.revision)
    except (OSError, ValueError) as e:
        raise _unavailable(ref, "model", e) from e
    return classify_engine_for(config.to_dict())


class SequenceClassifierModel:
    """A resident classification model and its tokenizer, run over token windows in batches."""

    def __init__(self, ref: ModelRef, device: torch.device, max_length: int = 512, batch_tokens: int = 8192,
                 max_windows: int = 8, dtype: torch.dtype = torch.float32) -> None:
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(ref.location, revision=ref.revision)
            model = AutoModelForSequenceClassification.from_pretrained(
                ref.location, revision=ref.revision, dtype=dtype)
        except (OSError, ValueError) as e:
            raise _unavailable(ref, "classification model", e) from e
        self.model = model.to(device).eval()
        self.config = model.config
        self.device = device
        self.ref = ref
        self.runtime = runtime_name(device, dtype)
        commit = getattr(model.config, "_commit_hash", None)
        self.revision = ref.revision or (str(commit) if commit else None)
        limit = int(getattr(model.config, "max_position_embeddings", max_length) or max_length)
        # some configs reserve position ids (RoBERTa: padding offset); stay safely inside
        self.max_length = min(max_length, limit - 2 if limit > 16 else limit)
        self.batch_tokens = batch_tokens
        self.max_windows = max_windows

    def _count(self, texts: Sequence[str]) -> list[int]:
        return [len(x) for x in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def encode(self, first: Sequence[str],
               second: Sequence[str] | None = None) -> tuple[list[dict[str, list[int]]], list[int]]:
        """Token windows of the texts (or text pairs: only the first is cut), at most
        ``max_windows`` per text; returns the windows and, for each, the index of its text."""
        # only the characters the first max_windows windows can hold are tokenised (a 100 MB text
        # would otherwise be tokenised whole, once per label for NLI)
        size = window_chars(self.max_length)
        first = [token_prefix(t, self._count, self.max_windows * self.max_length, size) for t in first]
        kwargs: dict[str, Any] = {"truncation": "only_first" if second is not None else True,
                                  "max_length": self.max_length, "return_overflowing_tokens": True}
        enc = self.tokenizer(list(first), list(second), **kwargs) if second is not None else \
            self.tokenizer(list(first), **kwargs)
        owners = list(enc["overflow_to_sample_mapping"])
        keys = [k for k in self.tokenizer.model_input_names if k in enc]
        windows: list[dict[str, list[int]]] = []
        kept_owner: list[int] = []
        seen: dict[int, int] = {}
        for row, owner in enumerate(owners):
            seen[owner] = seen.get(owner, 0) + 1
            if seen[owner] <= self.max_windows:
                windows.append({k: enc[k][row] for k in keys})
                kept_owner.append(owner)
        return windows, kept_owner

    @torch.inference_mode()
    def logits(self, windows: Sequence[dict[str, list[int]]]) -> torch.Tensor:
        """Logits of each window, in order, from padded batches sorted by length."""
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]["input_ids"]))
        out = torch.empty((len(windows), self.config.num_labels), dtype=torch.float32)
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and len(windows[order[end]]["input_ids"]) * (end - start + 1) <= self.batch_tokens:
                end += 1
            idx = order[start:end]
            padded = self.tokenizer.pad([windows[i] for i in idx], return_tensors="pt")
            observe_inputs(padded)
            batch = {k: v.to(self.device) for k, v in padded.items()}
            out[idx] = self.model(**batch).logits.float().cpu()
            start = end
        return out


class FineTunedClassifier:
    """Resident engine for ``classify`` with a fine-tuned sequence classifier."""

    kind = "fine-tuned"

    def __init__(self, model: SequenceClassifierModel) -> None:
        self.model = model
        self.model_id = model.ref.spec
        self.model_revision = model.revision
        self.runtime = model.runtime
        config = model.config
        self.labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        self.sigmoid = getattr(config, "problem_type", None) == "multi_label_classification"

    def run(self, texts: Sequence[str], params: ClassifyParams) -> list[Outcome]:
        p = params
        outcomes, live = start_outcomes(texts, p.engine, self.kind, self.model_id)
        if not live:
            return outcomes
        windows, owners = self.model.encode([texts[i] for i in live])
        window_logits = self.model.logits(windows)
        owner_index = torch.tensor(owners)
        for j, i in enumerate(live):
            mean = window_logits[owner_index == j].mean(0)
            probs = torch.sigmoid(mean) if self.sigmoid else torch.softmax(mean, dim=-1)
            outcomes[i] = classification(self.labels, probs.tolist(), multi_label=p.multi_label or self.sigmoid,
                                         threshold=p.threshold, engine=self.kind)
        return outcomes
