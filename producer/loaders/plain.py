"""Plain text and Markdown: the encoding is detected, not assumed.

Strict UTF-8 is tried first because it is both the common case and self-validating (bytes of
another encoding almost never form valid UTF-8 by accident); a UTF-16 BOM means UTF-16. Then
cp1252, when it decodes cleanly to plausible Latin text: on short files (an invoice line of
100-300 bytes) charset-normalizer has too little evidence and picks look-alikes such as mac_latin2
(issue 14.2), while cp1252 (a superset of latin-1's printable range) is by far the most common
legacy encoding of Western text. Shift-JIS is checked next for the same reason (charset-normalizer
takes short Japanese for cp949): its decoding must contain real kana. Anything else goes to
charset-normalizer, which weighs every candidate codec by how coherent the decoded text reads.

A UTF-8 file with a few broken bytes (cut in the middle of a character, one byte flipped) is still
UTF-8: its valid multi-byte characters outnumber the broken sequences many times over, which bytes
of cp1252 or Shift-JIS text never do. It used to fail as ``undecodable`` ("binary file?"), or, where
cp1252 happened to decode it, to read as mojibake throughout ("CafÃ©"); it is decoded as UTF-8 with
each broken sequence replaced by U+FFFD, and the document's metadata says how many
(``invalid_utf8``; rows of an export are not counted one by one).
"""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes

from docqueue.errors import DocumentError
from producer.loaders.base import Extracted

#: How much of a streamed file (CSV, JSONL) is looked at to choose its encoding.
SAMPLE_BYTES = 256 * 1024


#: Non-letter characters cp1252 text really uses; ``‚`` (0x82), ``ƒ``, ``ˆ``, ``Š``... are left out
#: because Shift-JIS lead bytes decode to them.
_LATIN_PUNCT = frozenset("€„…†‡‰‹‘’“”•–—˜™›«»°§©®±·¹²³µ¶º¿¡\xa0ª×÷¼½¾")


def _plausible_latin(text: str) -> bool:
    """Whether a cp1252 decoding reads like Western text rather than another encoding's bytes:
    no control characters, few non-ASCII characters, and those are letters or usual punctuation."""
    if any((ord(c) < 32 and c not in "\t\n\r\f") for c in text):
        return False
    non_ascii = [c for c in text if ord(c) > 127]
    visible = sum(1 for c in text if not c.isspace())
    if not non_ascii or visible == 0 or len(non_ascii) > 0.4 * visible:
        return False
    good = sum(1 for c in non_ascii if (c.isalpha() and c not in "ŠŒŽšœžŸƒ") or c in _LATIN_PUNCT)
    return good >= 0.9 * len(non_ascii)


def _plausible_japanese(text: str) -> bool:
    """Full-width kana (not the half-width range other CJK bytes fall into) make Shift-JIS sure."""
    non_ascii = [c for c in text if ord(c) > 127]
    kana = sum(1 for c in non_ascii if "\u3040" <= c <= "\u30ff")
    return bool(non_ascii) and kana >= 0.2 * len(non_ascii)


def _legacy(data: bytes, final: bool) -> str | None:
    """cp1252 or Shift-JIS when the bytes decode strictly and plausibly (see the module docstring)."""
    for codec, plausible in (("cp1252", _plausible_latin), ("shift_jis", _plausible_japanese)):
        try:
            text = codecs.getincrementaldecoder(codec)().decode(data, final=final)
        except UnicodeDecodeError:
            continue
        if plausible(text):
            return codec
    return None


#: A UTF-8 decoding with replacements is taken when valid multi-byte characters are at least this
#: many times the broken sequences.
DAMAGED_UTF8_RATIO = 4


def damaged_utf8(data: bytes, final: bool = True) -> tuple[str, int] | None:
    """``(text, broken sequences)`` when ``data`` is UTF-8 with a few broken bytes (see the module
    docstring), else None. ``final=False``: ``data`` is the start of a stream and may end in the
    middle of a character."""
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(data, final=final)
    broken = text.count("\ufffd") - data.count("\ufffd".encode())
    multibyte = sum(1 for c in text if ord(c) > 127 and c != "\ufffd")
    if broken <= 0 or multibyte < DAMAGED_UTF8_RATIO * broken:
        return None
    return text, broken


def decode(data: bytes) -> tuple[str, str]:
    """``(text, encoding)`` of ``data``; ``DocumentError('undecodable')`` when no codec fits."""
    text, encoding, _broken = _decode(data)
    return text, encoding


def _decode(data: bytes) -> tuple[str, str, int]:
    """``(text, encoding, broken UTF-8 sequences replaced)``: :func:`decode`, and for
    :func:`extract` how many bytes it had to replace (0 but for damaged UTF-8)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf_16", 0
        except UnicodeDecodeError:
            pass
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8):].decode("utf-8"), "utf_8_sig", 0
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "utf_8", 0
    except UnicodeDecodeError:
        pass
    damaged = damaged_utf8(data)
    if damaged is not None:
        return damaged[0], "utf_8", damaged[1]
    legacy = _legacy(data, final=True)
    if legacy is not None:
        return data.decode(legacy), legacy, 0
    best = from_bytes(data).best()
    if best is None:
        raise DocumentError("undecodable", "not text in any encoding charset-normalizer knows (binary file?)")
    return str(best), best.encoding, 0


def stream_codec(sample: bytes) -> tuple[str, str]:
    """``(codec, errors)`` for a file read as a stream, judged on its first bytes (``sample``).

    The sample may end in the middle of a character, so UTF-8 is checked incrementally. UTF-8 with a
    few broken bytes there is read with ``errors="replace"``; everything else strictly (a broken
    byte later is an error there).
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf_8_sig", "strict"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf_16", "strict"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf_8", "strict"
    except UnicodeDecodeError:
        pass
    if damaged_utf8(sample, final=False) is not None:
        return "utf_8", "replace"
    legacy = _legacy(sample, final=False)
    if legacy is not None:
        return legacy, "strict"
    best = from_bytes(sample).best()
    if best is None:
        raise DocumentError("undecodable", "not text in any encoding charset-normalizer knows (binary file?)")
    return best.encoding, "strict"


def extract(data: bytes) -> Extracted:
    text, _encoding, broken = _decode(data)
    return Extracted(text=text, meta={"invalid_utf8": broken} if broken else {})
