"""Language codes and names, both ways, for options that take either (``--to de`` or ``--to German``).

A chat model is told the language by name ("into German"); users type codes or names. Plain data, so
the producer (which imports no model libraries) and the worker agree.
"""

from __future__ import annotations

#: ISO 639-1 code -> English name, for the languages chat models are commonly asked for.
NAMES: dict[str, str] = {
    "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish",
    "fr": "French", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "ms": "Malay",
    "nl": "Dutch", "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "sk": "Slovak", "sl": "Slovenian", "sr": "Serbian", "sv": "Swedish", "th": "Thai", "tr": "Turkish",
    "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}
_CODES = {name.lower(): code for code, name in NAMES.items()}


def code_for(value: str) -> str | None:
    """The ISO 639-1 code of a code or an English language name (any case); None when unknown. Any
    two ASCII letters pass as a code: a model may speak a language this table does not name."""
    v = value.strip().lower()
    if len(v) == 2 and v.isascii() and v.isalpha():
        return v
    return _CODES.get(v)


def name_of(code: str) -> str:
    """The English name of a code (the code itself when this table does not know it)."""
    return NAMES.get(code.lower(), code)
