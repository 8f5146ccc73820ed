"""The built-in prompts: each has a chat form (for models with a chat template) and a completion form
(for base models without one, GPT-2 style: the document, then a cue such as "TL;DR:").

A prompt is identified by its template id and the sha256 of the form used, which go into every
result's provenance: a changed prompt is a changed result, and a rerun can prove it used the same one.
The chat form is one user turn (no system turn: some templates, Gemma's, refuse a system role).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: template id -> (chat form, completion form). ``{document}`` is the text; the other fields are filled
#: from the params. A completion form's answer follows its last line directly.
TEMPLATES: dict[str, tuple[str, str]] = {
    "summarize.paragraph": ("Summarize the following document in one paragraph{words}{language}.\n\n{document}",
                            "{document}\n\nTL;DR:"),
    "summarize.bullets": ("Summarize the following document as a bulleted list, one '- ' line per key "
                          "point{words}{language}.\n\n{document}",
                          "{document}\n\nKey points:\n-"),
    "summarize.tldr": ("Summarize the following document in one sentence{words}{language}.\n\n{document}",
                       "{document}\n\nTL;DR:"),
    "translate": ("Translate the following text {source}into {target}. Answer with the translation only.\n\n"
                  "{document}",
                  "{source_name}: {document}\n{target}:"),
    "classify": ("Classify the document into exactly one of these categories: {labels}.{descriptions}\n\n"
                 "Document:\n{document}\n\nAnswer with the category name only.",
                 "Document: {document}\nCategories: {labels}\nCategory:"),
    "classify.multi": ("Does the category '{label}'{description} apply to the document below? Answer yes or "
                       "no.\n\nDocument:\n{document}",
                       "Document: {document}\nQuestion: is this document about {label}? Answer:"),
    "review": ("Review this contract. Reply in JSON: clauses, each a category ({categories}) and a quote copied "
               "exactly; fields: parties, dates as YYYY-MM-DD, governing law, renewal term and notice period as "
               "P1Y/P90D, null if absent; risks, each a flag ({flags}), a severity and an exact quote.\n\n"
               "Contract:\n{document}",
               "Contract:\n{document}\n\nReview in JSON (clauses of {categories} with exact quotes; fields; risks "
               "among {flags}):\n"),
}


@dataclass(frozen=True)
class Rendered:
    """A prompt ready for the tokenizer, and its provenance."""

    text: str
    template_id: str
    template_sha256: str
    form: str  # "chat" | "completion"


def template_sha256(template_id: str, chat: bool) -> str:
    form = TEMPLATES[template_id][0 if chat else 1]
    return hashlib.sha256(form.encode("utf-8")).hexdigest()


def fill(template_id: str, chat: bool, **fields: str) -> str:
    """The template's form with its fields filled (``{document}`` included)."""
    return TEMPLATES[template_id][0 if chat else 1].format(**fields)


def answer_prefix(chat: bool) -> str:
    """What precedes a short answer: a completion cue ends in ':', so its answer starts with a space."""
    return "" if chat else " "
