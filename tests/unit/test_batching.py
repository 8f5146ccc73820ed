"""Micro-batch planning on the producer: token budget, document count, length order, and the most
expensive group first."""

from __future__ import annotations

import itertools

from producer.batching import Sized, estimate_tokens, plan_batches


def _items(lengths: list[int]) -> list[Sized]:
    return [Sized(f"j{i}", n) for i, n in enumerate(lengths)]


def _tokens(items: list[Sized]) -> dict[str, int]:
    return {s.job_id: s.tokens for s in items}


def test_every_job_once_within_both_bounds() -> None:
    items = _items([5, 300, 12, 80, 80, 7, 250, 33, 1, 120] * 7)
    tokens = _tokens(items)
    groups = plan_batches(items, max_docs=8, max_tokens=1024)
    flat = [j for g in groups for j in g]
    assert sorted(flat) == sorted(tokens)
    for g in groups:
        assert len(g) <= 8
        assert max(tokens[j] for j in g) * len(g) <= 1024 or len(g) == 1


def test_groups_are_length_sorted_runs() -> None:
    """Each group is a contiguous run of the length order, so padding inside it is small."""
    items = _items([40, 3, 200, 17, 90, 3, 64, 150, 8, 120, 33, 70])
    tokens = _tokens(items)
    groups = plan_batches(items, max_docs=3, max_tokens=10_000)
    ranges = sorted((min(tokens[j] for j in g), max(tokens[j] for j in g)) for g in groups)
    for (_, hi), (lo, _) in itertools.pairwise(ranges):
        assert hi <= lo


def test_token_budget_cuts_long_documents_into_smaller_groups() -> None:
    items = _items([10] * 32 + [256] * 32)
    tokens = _tokens(items)
    groups = plan_batches(items, max_docs=32, max_tokens=2048)
    short = [g for g in groups if tokens[g[0]] == 10]
    long = [g for g in groups if tokens[g[0]] == 256]
    assert [len(g) for g in short] == [32]  # 32 x 10 tokens fits
    assert [len(g) for g in long] == [8, 8, 8, 8]  # 8 x 256 = 2048


def test_most_expensive_group_first() -> None:
    """Workers take messages in order: the long groups go first so none is left alone at the end."""
    items = _items([5] * 10 + [200] * 10 + [60] * 10)
    tokens = _tokens(items)
    groups = plan_batches(items, max_docs=10, max_tokens=100_000)
    costs = [max(tokens[j] for j in g) * len(g) for g in groups]
    assert costs == sorted(costs, reverse=True)
    assert tokens[groups[0][0]] == 200


def test_a_document_over_the_budget_gets_a_group_of_its_own() -> None:
    groups = plan_batches(_items([500, 4, 4]), max_docs=32, max_tokens=256)
    assert ["j0"] in groups and sorted(j for g in groups for j in g) == ["j0", "j1", "j2"]


def test_estimate_tokens_is_capped_and_positive() -> None:
    assert estimate_tokens("", 256) == 1
    assert estimate_tokens("word " * 40, 256) == 51
    assert estimate_tokens("x" * 100_000, 256) == 256
