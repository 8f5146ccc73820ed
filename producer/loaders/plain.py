"""Plain text and Markdown: the encoding is detected, not assumed.

Strict UTF-8 is tried first because it is both the common case and self-validating (bytes of
another encoding almost never form valid UTF-8 by accident); anything else goes to
charset-normalizer, which weighs every candidate codec by how coherent the decoded text reads.
"""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes

from docqueue.errors import DocumentError
from producer.loaders.base import Extracted

#: How much of a streamed file (CSV, JSONL) is looked at to choose its encoding.
SAMPLE_BYTES = 256 * 1024


def decode(data: bytes) -> tuple[str, str]:
    """``(text, encoding)`` of ``data``; ``DocumentError('undecodable')`` when no codec fits."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8):].decode("utf-8"), "utf_8_sig"
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "utf_8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    if best is None:
        raise DocumentError("undecodable", "not text in any encoding charset-normalizer knows (binary file?)")
    return str(best), best.encoding


def detect_stream_encoding(sample: bytes) -> str:
    """The codec for a file read as a stream, judged on its first bytes (``sample``).

    The sample may end in the middle of a character, so UTF-8 is checked incrementally.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf_8_sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf_8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(sample).best()
    if best is None:
        raise DocumentError("undecodable", "not text in any encoding charset-normalizer knows (binary file?)")
    return best.encoding


def extract(data: bytes) -> Extracted:
    text, _encoding = decode(data)
    return Extracted(text=text)
