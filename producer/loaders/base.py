"""What every format loader produces, and the small shared pieces they all need.

A loader never raises for a bad input: a file that cannot be read becomes a
:class:`LoadedDocument` carrying ``error_kind``, which the producer stores as a failed job with that
reason, so a submission accounts for every input and goes on past the bad ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

from docqueue.errors import DocumentError
from docqueue.storable import text_problem


@dataclass(frozen=True)
class LoadedDocument:
    """Extracted text plus provenance; ``error_kind`` set when the source could not be read.

    ``sha256`` is of the source bytes (for an export row: of the row's text, UTF-8), the key under
    which an earlier result for the same content is reused. ``page_offsets[i]`` is the character
    offset in ``text`` where page ``i + 1`` starts (formats with pages only).
    """

    source: str
    text: str = ""
    sha256: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error_kind: str | None = None
    error_message: str | None = None
    source_row: int | None = None
    external_id: str | None = None
    page_offsets: list[int] | None = None


@dataclass(frozen=True)
class Extracted:
    """The text of one single-document file, as a format extractor returns it."""

    text: str
    page_offsets: list[int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    """What one input may cost (issue 15.1): the ``max_*`` settings, see ``docqueue.settings``."""

    max_file_bytes: int = 64 * 1024 * 1024
    max_document_chars: int = 16_000_000
    max_expanded_bytes: int = 256 * 1024 * 1024
    #: PDF/DOCX are parsed in a guarded child with these budgets (0 s: in-process, unguarded).
    parse_timeout_s: float = 60.0
    parse_memory_mb: int = 2048

    @classmethod
    def from_settings(cls) -> Limits:
        from docqueue.settings import get_settings

        s = get_settings()
        return cls(s.max_file_bytes, s.max_document_chars, s.max_expanded_bytes, s.parse_timeout_s,
                   s.parse_memory_mb)


@dataclass(frozen=True)
class LoadOptions:
    """How inputs are chosen and how exports are read (the ``submit`` options)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    hidden: bool = False
    text_field: str = "text"
    id_field: str | None = None
    #: ``submit --clean-text``: remove NUL and replace lone surrogates (with U+FFFD) instead of failing the
    #: document with ``invalid_text``; the document's metadata says what was changed (``text_cleaned``).
    clean_text: bool = False
    #: None: read from the settings (environment) when loading starts.
    limits: Limits | None = None

    def resolved(self) -> LoadOptions:
        """These options with ``limits`` filled in, so settings are read once per submission."""
        if self.limits is not None:
            return self
        return dataclasses.replace(self, limits=Limits.from_settings())


@dataclass
class ReadStats:
    """Files opened and bytes read so far; the CLI's progress bar reads it while loading runs."""

    files: int = 0
    bytes: int = 0


class CountingReader(io.RawIOBase):
    """A raw binary stream that counts the bytes read through it (progress for streamed exports)."""

    def __init__(self, raw: io.RawIOBase | io.BufferedIOBase | io.BytesIO, stats: ReadStats) -> None:
        super().__init__()
        self._raw = raw
        self._stats = stats

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self._stats.bytes += n
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_SURROGATE_MIN, _SURROGATE_MAX = 0xD800, 0xDFFF


def clean_text(text: str) -> str:
    """Text every database takes: NUL removed, lone surrogates (a JSON export may carry ``\\ud800``)
    replaced with U+FFFD. For ids and metadata; a document's text goes through :func:`checked_text`."""
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if _SURROGATE_MIN <= ord(c) <= _SURROGATE_MAX else c for c in text)
    return text


def checked_text(text: str, clean: bool) -> tuple[str, dict[str, Any]]:
    """A document's text as stored, and the metadata saying so where it was changed.

    A text is never changed silently: holding NUL or a lone surrogate (which no database stores), it
    fails the document (``invalid_text``) unless the user asked for ``--clean-text``, and then the
    metadata records ``text_cleaned`` with what was removed and replaced."""
    problem = text_problem(text)
    if problem is None:
        return text, {}
    if not clean:
        raise DocumentError("invalid_text", f"the text holds {problem}; submit --clean-text removes NUL and "
                            "replaces lone surrogates with U+FFFD (and says so in the metadata)")
    nul = text.count("\x00")
    surrogates = sum(1 for c in text if _SURROGATE_MIN <= ord(c) <= _SURROGATE_MAX)
    return clean_text(text), {"text_cleaned": {"nul_removed": nul, "surrogates_replaced": surrogates}}


def clean_value(value: Any) -> Any:
    """:func:`clean_text` applied through JSON metadata (PostgreSQL JSONB refuses ``\\u0000`` too)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_value(v) for v in value]
    return value


def failed(source: str, kind: str, message: str, **provenance: Any) -> LoadedDocument:
    """A document that could not be read, with a specific machine-readable reason."""
    return LoadedDocument(source=source, error_kind=kind, error_message=message, **provenance)


def from_error(source: str, error: DocumentError, **provenance: Any) -> LoadedDocument:
    return failed(source, error.kind, f"{source}: {error.message}", **provenance)
