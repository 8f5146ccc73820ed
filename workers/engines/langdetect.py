"""Which language a document is written in (ISO 639-1), for ``translate --from auto``.

lingua (Rust, offline, 75 languages) in its low-accuracy mode: ~100 MB and well under a second to
load, against ~1 GB and 15 s for the high-accuracy models, and reliable on a sentence or more. A
text too short or too mixed to call returns ``None``: guessing would pick a wrong model silently.
"""

from __future__ import annotations

from functools import lru_cache

from lingua import LanguageDetector, LanguageDetectorBuilder

from workers.engines.windows import head

#: Detection reads the start of a document only: a few paragraphs settle its language.
SAMPLE_CHARS = 2000


@lru_cache(maxsize=1)
def _detector() -> LanguageDetector:
    return LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of ``text``'s language, or None when it cannot be told."""
    sample = head(text, SAMPLE_CHARS)  # not text.strip(): that would copy a 100 MB text first
    if not sample:
        return None
    language = _detector().detect_language_of(sample)
    if language is None:
        return None
    return language.iso_code_639_1.name.lower()
