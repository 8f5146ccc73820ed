"""Grouping jobs into micro-batches: one queue message carries several jobs of similar length.

Sorting by length before cutting keeps padding low inside the worker's forward passes (one long
document among short ones can cost several times the compute), and the token budget bounds the
memory one message can need. Groups come out most expensive first: Redis queues are FIFO, so the
workers start on the long groups and finish on short ones, and no worker is left alone with one
big message at the end of a batch while the others idle (longest-processing-time-first).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CHARS_PER_TOKEN = 4  # a cheap estimate; the producer must not load a tokenizer


@dataclass(frozen=True)
class Sized:
    job_id: str
    tokens: int


def estimate_tokens(text: str, cap: int) -> int:
    """Rough token count of ``text``, capped where the engine would truncate or chunk anyway."""
    return max(1, min(cap, len(text) // CHARS_PER_TOKEN + 1))


def plan_batches(items: Iterable[Sized], max_docs: int, max_tokens: int) -> list[list[str]]:
    """Job ids cut into length-sorted groups of at most ``max_docs`` jobs and ``max_tokens`` tokens,
    the most expensive group first.

    The budget counts padded tokens (longest item x count), which is what a padded batch costs; a
    single item over the budget still gets a group of its own (the engine windows it).
    """
    groups: list[tuple[int, list[str]]] = []
    batch: list[str] = []
    longest = 0
    for item in sorted(items, key=lambda s: s.tokens):
        new_longest = max(longest, item.tokens)
        if batch and (len(batch) >= max_docs or new_longest * (len(batch) + 1) > max_tokens):
            groups.append((longest * len(batch), batch))
            batch, new_longest = [], item.tokens
        batch.append(item.job_id)
        longest = new_longest
    if batch:
        groups.append((longest * len(batch), batch))
    groups.sort(key=lambda g: g[0], reverse=True)
    return [ids for _, ids in groups]
