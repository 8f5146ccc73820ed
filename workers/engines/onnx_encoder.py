"""The sentence encoder on ONNX Runtime int8: the same windows, batches and mean pooling as
:class:`~workers.engines.embedding.SentenceEncoder`, only the forward pass runs elsewhere.

Measured on MiniLM (``ops/bench/throughput.py``), int8 with per-channel weights and a fused BERT
graph does about 2.3x the documents per CPU-second of torch fp32 at cosine ~0.99 to fp32, in about a
third of the memory. It is opt-in (``DOCQUEUE_ONNX_MODELS``): its scores are close to, not equal to,
fp32's, and ``docqueue models optimize`` prints how close before an artifact is accepted. The torch
weights are never loaded: a process holds one copy, the int8 one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer

from docqueue.errors import ModelUnavailableError
from docqueue.onnx_artifacts import ONNX_INT8
from workers.engines.embedding import ModelRef, SentenceEncoder

INSTALL_HINT = "ONNX Runtime is not installed: pip install 'docqueue[onnx]' (or onnxruntime)"


def model_revision(ref: ModelRef) -> str | None:
    """The revision a torch encoder of ``ref`` would report (its manifest must name the same)."""
    if ref.revision:
        return ref.revision
    try:
        config = AutoConfig.from_pretrained(ref.location)
    except (OSError, ValueError) as e:
        raise ModelUnavailableError(f"cannot load embedding model {ref.spec!r}: {e}".splitlines()[0]) from e
    commit = getattr(config, "_commit_hash", None)
    return str(commit) if commit else None


def session(path: Path, threads: int) -> object:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (one per worker child, as torch)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelUnavailableError(INSTALL_HINT) from e
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxSentenceEncoder(SentenceEncoder):
    """Resident int8 encoder read from an artifact of ``docqueue models optimize``."""

    def __init__(self, ref: ModelRef, artifact: Path, revision: str | None, max_length: int = 256,
                 batch_tokens: int = 8192, max_windows: int = 8) -> None:
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(ref.location, revision=ref.revision)
            config = AutoConfig.from_pretrained(ref.location, revision=ref.revision)
        except (OSError, ValueError) as e:
            raise ModelUnavailableError(f"cannot load embedding model {ref.spec!r}: {e}".splitlines()[0]) from e
        self.session = session(artifact, max(1, torch.get_num_threads()))
        self.device = torch.device("cpu")
        self.runtime = ONNX_INT8
        self._setup(ref, revision, int(getattr(config, "max_position_embeddings", max_length)),
                    int(config.hidden_size), max_length, batch_tokens, max_windows)

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feeds = {"input_ids": input_ids.numpy().astype(np.int64),
                 "attention_mask": attention_mask.numpy().astype(np.int64)}
        hidden = self.session.run(None, feeds)[0]  # type: ignore[attr-defined]
        return torch.from_numpy(np.ascontiguousarray(hidden))
