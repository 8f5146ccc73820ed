"""Label-word evidence for zero-shot classify: how much of a label's own name a text segment says.

A small sentence encoder such as MiniLM places a contract provision near its topic, but it ranks
a hundred label names ("Governing Laws", "Indemnifications", "Notices") against it only roughly; a
sentence that *contains* "governed by the laws of" or "shall indemnify" says it outright. So each
sentence segment that names a label's words (stemmed: "indemnify" matches "Indemnifications") gets a
bonus for that label, on the same scale as a cosine similarity. The bonus is per segment, not per
document: a long news article that mentions "business" once outvotes no sports report with it,
because only that one segment's vote moves (on the dev parts, a document-level bonus cost BBC News
four points of accuracy where the segment bonus cost none; ops/eval/classify_zero_shot.py).

Words are weighted within the label set by how few labels share them (``log(1 + n / df)``): in
"Indemnifications" and "Indemnity Insurance", "indemn" tells the two apart less than "insur".
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache

import snowballstemmer
import torch

from workers.engines.classify_common import normalise_label

#: Weight of a segment naming all of a label's words, in cosine units (MiniLM similarities of a
#: matching label and a near miss differ by about 0.05-0.2). Chosen on the dev parts among 0.1-0.5.
LABEL_WORD_WEIGHT = 0.25
_WORD = re.compile(r"[^\W_]+")
#: Words that name no topic (label names such as "Terms and Conditions", "General", "Other").
_STOP = frozenset({
    "a", "an", "and", "or", "of", "the", "to", "in", "on", "for", "with", "by", "from", "as", "at", "is",
    "are", "be", "this", "that", "these", "those", "its", "it", "their", "other", "others", "any", "all",
    "general", "miscellaneous", "misc", "etc",
})


#: Stems this long match a longer or shorter form of the same word: the stemmer leaves "indemnify"
#: as "indemnifi", "Indemnifications" as "indemnif" and "indemnity" as "indemn".
MIN_PREFIX = 5


def _names(stem: str, seen: set[str], extended: set[str]) -> bool:
    """Whether a segment with these stems (and these proper prefixes of them) says the label word."""
    if stem in seen or stem in extended:
        return True
    return len(stem) > MIN_PREFIX and any(stem[:k] in seen for k in range(MIN_PREFIX, len(stem)))


@lru_cache(maxsize=1)
def _stemmer() -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer("english")


def stems(text: str) -> set[str]:
    """The set of stemmed, lower-cased words of a text."""
    return set(_stemmer().stemWords(_WORD.findall(text.lower())))


class LabelWords:
    """The stemmed content words of each label, weighted within the label set."""

    def __init__(self, labels: Sequence[str]) -> None:
        stemmer = _stemmer()
        self.words: list[dict[str, float]] = []
        per_label = [set(stemmer.stemWords([w for w in _WORD.findall(normalise_label(label).lower())
                                            if w not in _STOP])) for label in labels]
        df: dict[str, int] = {}
        for words in per_label:
            for w in words:
                df[w] = df.get(w, 0) + 1
        n = len(labels)
        for words in per_label:
            weights = {w: math.log(1 + n / df[w]) for w in words}
            total = sum(weights.values())
            self.words.append({w: v / total for w, v in weights.items()} if total else {})

    def evidence(self, segment_texts: Sequence[str]) -> torch.Tensor:
        """(segments, labels): the weighted share of each label's words that each segment contains."""
        rows = []
        for text in segment_texts:
            seen = stems(text)
            extended = {w[:k] for w in seen if len(w) >= MIN_PREFIX for k in range(MIN_PREFIX, len(w))}
            rows.append([sum(v for w, v in words.items() if _names(w, seen, extended)) for words in self.words])
        return torch.tensor(rows, dtype=torch.float32).reshape(len(segment_texts), len(self.words))
