"""A warning on results whose document is in a language the model was not trained on.

The outcome stands (the engine did run), but a label or summary from an English-only encoder on a
Chinese article is close to a guess, and the user must be able to tell which results those are:
each such result carries ``warnings: [{"kind": "language_unsupported", "language": "zh", ...}]``.
Only where the model's languages are known (:func:`docqueue.model_languages.model_languages`) and
the document's language can be told (lingua, on its first 2,000 characters); translation is left
out, since it picks its pair model by the detected language itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from docqueue.model_languages import model_languages
from docqueue.names import CLASSIFY, REVIEW, SUMMARIZE
from workers.engines import Outcome
from workers.engines.langdetect import detect_language

LANGUAGE_UNSUPPORTED = "language_unsupported"
#: Tasks whose model reads the document's own language.
CHECKED_TASKS = frozenset({CLASSIFY, SUMMARIZE, REVIEW})


def _base(code: str) -> str:
    return code.lower().replace("_", "-").split("-")[0]


def flag_languages(task: str, model: str | None, texts: Sequence[str], outcomes: Sequence[Outcome]
                   ) -> list[Outcome]:
    """``outcomes`` with a ``language_unsupported`` warning added to each succeeded one whose text
    is in a language ``model`` does not read."""
    if task not in CHECKED_TASKS or not model or len(texts) != len(outcomes):
        return list(outcomes)
    languages = model_languages(model)
    if languages is None:
        return list(outcomes)
    known = {_base(c) for c in languages}
    flagged: list[Outcome] = []
    for text, outcome in zip(texts, outcomes, strict=True):
        language = detect_language(text) if isinstance(outcome, dict) else None
        if isinstance(outcome, dict) and language is not None and _base(language) not in known:
            warning = {"kind": LANGUAGE_UNSUPPORTED, "language": language, "model_languages": sorted(known),
                       "message": f"the document looks {language!r}, which model {model!r} was not trained on "
                                  f"({', '.join(sorted(known))}): treat this result as a guess"}
            outcome = {**outcome, "warnings": [*outcome.get("warnings", []), warning]}
        flagged.append(outcome)
    return flagged
