"""Grouping jobs into micro-batches: one queue message carries several jobs of similar length.

Sorting by length before cutting keeps padding low inside the worker's forward passes (one long
document among short ones can cost several times the compute), and the token budget bounds the
memory one message can need.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

CHARS_PER_TOKEN = 4  # a cheap estimate; the producer must not load a tokenizer


@dataclass(frozen=True)
class Sized:
    job_id: str
    tokens: int


def estimate_tokens(text: str, cap: int) -> int:
    """Rough token count of ``text``, capped where the engine would truncate or chunk anyway."""
    return max(1, min(cap, len(text) // CHARS_PER_TOKEN + 1))


def plan_batches(items: Iterable[Sized], max_docs: int, max_tokens: int) -> Iterator[list[str]]:
    """Job ids cut into length-sorted groups of at most ``max_docs`` jobs and ``max_tokens`` tokens.

    The budget counts padded tokens (longest item x count), which is what a padded batch costs.
    """
    batch: list[str] = []
    longest = 0
    for item in sorted(items, key=lambda s: s.tokens):
        new_longest = max(longest, item.tokens)
        if batch and (len(batch) >= max_docs or new_longest * (len(batch) + 1) > max_tokens):
            yield batch
            batch, new_longest = [], item.tokens
        batch.append(item.job_id)
        longest = new_longest
    if batch:
        yield batch
