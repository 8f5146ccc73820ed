"""Label-word evidence for zero-shot classify: how much of a label's own name a text segment says.

A small sentence encoder such as MiniLM places a contract provision near its topic, but it ranks
a hundred label names ("Governing Laws", "Indemnifications", "Notices") against it only roughly; a
sentence that *contains* "governed by the laws of" or "shall indemnify" says it outright. So each
sentence segment that names a label's words (stemmed: "indemnify" matches "Indemnifications") gets a
bonus for that label, on the same scale as a cosine similarity. The bonus is per segment, not per
document: a long news article that mentions "business" once outvotes no sports report with it,
because only that one segment's vote moves (on the dev parts, a document-level bonus cost BBC News
seven points of accuracy where the segment bonus cost none; ops/eval/classify_zero_shot.py).

Words are weighted within the label set by how few labels share them (``log(1 + n / df)``): in
"Governing Laws" and "Compliance With Laws", "laws" tells the two apart less than "governed".
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


@lru_cache(maxsize=1)
def _stemmer() -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    """One word's stem, memoised: the stemmer is pure Python and a corpus repeats its words."""
    return str(_stemmer().stemWord(word))


def stems(text: str) -> set[str]:
    """The set of stemmed, lower-cased words of a text."""
    return {_stem(w) for w in _WORD.findall(text.lower())}


class LabelWords:
    """The stemmed content words of each label, weighted within the label set, indexed so that a
    segment costs a few set lookups per word whatever the number of labels."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.n_labels = len(labels)
        per_label = [{_stem(w) for w in _WORD.findall(normalise_label(label).lower()) if w not in _STOP}
                     for label in labels]
        df: dict[str, int] = {}
        for words in per_label:
            for w in words:
                df[w] = df.get(w, 0) + 1
        #: stem -> the labels it is a word of, and a proper prefix of a stem (a shorter form) -> [(label, stem)]
        self._stems: dict[str, list[int]] = {}
        self._shorter: dict[str, list[tuple[int, str]]] = {}
        self._weight: dict[tuple[int, str], float] = {}
        for i, words in enumerate(per_label):
            weights = {w: math.log(1 + self.n_labels / df[w]) for w in words}
            total = sum(weights.values())
            for w, v in weights.items():
                self._weight[i, w] = v / total
                self._stems.setdefault(w, []).append(i)
                for k in range(MIN_PREFIX, len(w)):
                    self._shorter.setdefault(w[:k], []).append((i, w))

    def _matches(self, word: str) -> set[tuple[int, str]]:
        """The (label, label stem) pairs a segment word names: the same stem, a longer form of it
        (the stem is a prefix of the word) or a shorter one (the word is a prefix of the stem)."""
        found = {(i, word) for i in self._stems.get(word, ())}
        found.update(self._shorter.get(word, ()) if len(word) >= MIN_PREFIX else ())
        for k in range(MIN_PREFIX, len(word)):
            found.update((i, word[:k]) for i in self._stems.get(word[:k], ()))
        return found

    def evidence(self, segment_texts: Sequence[str]) -> torch.Tensor:
        """(segments, labels): the weighted share of each label's words that each segment contains."""
        out = torch.zeros((len(segment_texts), self.n_labels), dtype=torch.float32)
        for row, text in enumerate(segment_texts):
            named: set[tuple[int, str]] = set()
            for word in stems(text):
                named |= self._matches(word)
            for i, w in named:
                out[row, i] += self._weight[i, w]
        return out
