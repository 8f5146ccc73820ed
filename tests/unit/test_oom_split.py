"""CUDA out-of-memory: the batch is halved and retried, and a document that never fits fails alone.

The model is the real MiniLM classifier; only its forward pass is given the memory of a small
device: an encoder subclass raises ``torch.cuda.OutOfMemoryError`` (what PyTorch raises on a GPU)
when asked to embed more than ``limit`` windows at once. Runs on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from docqueue.errors import DocumentError
from docqueue.names import CLASSIFY
from docqueue.params import parse_params
from workers.engines.classify import ZeroShotEmbeddingClassifier
from workers.engines.embedding import OFFLINE_MINILM, SentenceEncoder, resolve_model
from workers.pipeline import RunReport, run_engine

PARAMS = parse_params(CLASSIFY, {"labels": ["greeting", "question about the weather", "legal contract"]})
TEXTS = [
    "Hello, nice to meet you!", "Will it rain tomorrow?", "This Agreement shall be governed by the laws of Delaware.",
    "Good morning everyone.", "Is it going to be sunny this weekend?", "The Licensee shall indemnify the Licensor.",
    "Hi there, how are you?", "How cold will it be tonight?", "Either party may terminate this Agreement.",
    "Hey! Long time no see.",
]


class SmallDeviceEncoder(SentenceEncoder):
    """MiniLM whose forward pass runs out of memory above ``limit`` windows per batch."""

    limit = 10**9
    batches: list[int]

    def _embed_ids(self, windows: Sequence[list[int]]) -> torch.Tensor:
        self.batches.append(len(windows))
        if len(windows) > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate a batch of {len(windows)}")
        return super()._embed_ids(windows)


@pytest.fixture(scope="module")
def engine() -> ZeroShotEmbeddingClassifier:
    encoder = SmallDeviceEncoder(resolve_model(OFFLINE_MINILM), torch.device("cpu"))
    encoder.batches = []
    return ZeroShotEmbeddingClassifier(encoder)


def _limit(engine: ZeroShotEmbeddingClassifier, limit: int) -> SmallDeviceEncoder:
    encoder = engine.encoder
    assert isinstance(encoder, SmallDeviceEncoder)
    encoder.limit, encoder.batches = limit, []
    return encoder


def test_out_of_memory_batch_is_split_until_it_fits(engine: ZeroShotEmbeddingClassifier) -> None:
    _limit(engine, 10**9)
    reference = run_engine(engine, TEXTS, PARAMS)  # also caches the label vectors
    encoder = _limit(engine, 3)
    report = RunReport()
    outcomes = run_engine(engine, TEXTS, PARAMS, report)
    assert all(isinstance(o, dict) for o in outcomes)
    assert [o["label"] for o in outcomes] == [r["label"] for r in reference]  # type: ignore[index]
    for got, want in zip(outcomes, reference, strict=True):
        assert got["scores"] == pytest.approx(want["scores"], abs=2e-3)  # type: ignore[index]
    # 10 -> 5 + 5 -> (2 + 3) + (2 + 3): two failed forward passes, then four that fit
    assert encoder.batches == [10, 5, 2, 3, 5, 2, 3]
    assert report.engine_runs == 7
    assert [o["label"] for o in outcomes[:3]] == ["greeting", "question about the weather", "legal contract"]  # type: ignore[index]


def test_a_document_that_never_fits_fails_alone(engine: ZeroShotEmbeddingClassifier) -> None:
    long_text = " ".join(f"The Supplier shall deliver item {i} within thirty days of the order." for i in range(150))
    texts = ["Hello, nice to meet you!", long_text, "Will it rain tomorrow?"]
    _limit(engine, 10**9)
    assert len(engine.encoder._windows(long_text)) > 4  # several model windows
    _limit(engine, 4)
    outcomes = run_engine(engine, texts, PARAMS)
    assert isinstance(outcomes[1], DocumentError) and outcomes[1].kind == "out_of_memory"
    assert "does not fit" in outcomes[1].message
    assert outcomes[0]["label"] == "greeting"  # type: ignore[index]
    assert outcomes[2]["label"] == "question about the weather"  # type: ignore[index]


def test_other_failures_are_not_split(engine: ZeroShotEmbeddingClassifier) -> None:
    """Splitting is for memory only: any other error isolates documents one by one, as before."""
    encoder = _limit(engine, 10**9)
    report = RunReport()
    mismatch = parse_params(CLASSIFY, {"labels": ["a", "b"], "engine": "nli"})
    outcomes = run_engine(engine, ["fine", "also fine"], mismatch, report)
    assert all(isinstance(o, DocumentError) and o.kind == "engine_mismatch" for o in outcomes)
    assert report.engine_runs == 1 and encoder.batches == []
