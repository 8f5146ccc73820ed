"""The benchmark's two corpora of real text, read from the public evaluation data (``--data``).

* ``short``: English sentences of the Tatoeba test sets (LASER, CC BY 2.0 FR), about 10 tokens each;
* ``medium``: LEDGAR contract provisions (LexGLUE, CC BY 4.0), about 110-125 tokens, a tenth over 256.

A run asks for ``n`` documents; a corpus with fewer unique texts is cycled (the same texts again,
which costs the model the same).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import cycle, islice
from pathlib import Path

#: Labels the benchmark classifies into: LEDGAR provision types for provisions, generic ones for
#: sentences. Only their number matters for speed, and it is small next to the documents.
MEDIUM_LABELS = ["Governing Laws", "Indemnifications", "Confidentiality", "Terminations", "Notices",
                 "Amendments", "Severability", "Entire Agreements"]
SHORT_LABELS = ["question", "statement about oneself", "request", "opinion", "fact"]


@dataclass(frozen=True)
class Corpus:
    name: str
    texts: list[str]
    labels: list[str]
    source: str

    @property
    def params(self) -> dict[str, object]:
        return {"labels": self.labels}


def _tatoeba(data: Path) -> list[str]:
    seen: dict[str, None] = {}
    for path in sorted((data / "tatoeba").glob("eng-*.dev500.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                seen.setdefault(json.loads(line)["en"].strip(), None)
    return [t for t in seen if t]


def _ledgar(data: Path) -> list[str]:
    lines = (data / "ledgar" / "dev500.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def load_corpus(name: str, data: Path, n: int) -> Corpus:
    """``n`` documents of corpus ``name`` (in the data set's order, cycled if needed)."""
    if name == "short":
        texts, labels, source = _tatoeba(data), SHORT_LABELS, "Tatoeba English sentences (LASER test sets)"
    elif name == "medium":
        texts, labels, source = _ledgar(data), MEDIUM_LABELS, "LEDGAR provisions (LexGLUE)"
    else:
        raise ValueError(f"unknown corpus {name!r}")
    if not texts:
        raise FileNotFoundError(f"no {name} texts under {data}")
    return Corpus(name, list(islice(cycle(texts), n)), labels, source)
