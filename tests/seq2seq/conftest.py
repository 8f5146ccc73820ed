"""Fixtures for the summarize/translate tests: tiny seq2seq models built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tiny_models import WORDS, build_all


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"marian": path, "bart": path}``: random-weight models saved with save_pretrained."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return build_all(tmp_path_factory.mktemp("tiny-models"))


def long_english(paragraphs: int, sentences: int, seed: int = 1) -> str:
    """Plain English-word text (the tiny models' vocabulary) in ``paragraphs`` blank-line-separated
    paragraphs of ``sentences`` sentences each."""
    import random

    rng = random.Random(seed)
    paras = []
    for _ in range(paragraphs):
        sents = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
                 for _ in range(sentences)]
        paras.append(" ".join(sents))
    return "\n\n".join(paras)
