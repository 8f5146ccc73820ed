"""Turning paths, folders and globs into documents, one at a time (a stream, never a list).

A file that cannot be read does not stop the submission: it becomes a :class:`LoadedDocument` with
an error, which the producer stores as a failed job with that specific reason.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".text"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES


@dataclass(frozen=True)
class LoadedDocument:
    """Extracted text plus provenance; ``error_kind`` set when the source could not be read."""

    source: str
    text: str = ""
    sha256: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error_kind: str | None = None
    error_message: str | None = None


def _has_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def iter_paths(inputs: Iterable[str]) -> Iterator[Path]:
    """Every file named by ``inputs``: files as given, folders recursively (sorted, hidden skipped),
    glob patterns expanded (``**`` recurses). A name matching nothing is yielded as is, so the
    loader reports it as missing instead of silently dropping it."""
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith("."):
                        yield Path(dirpath) / name
        elif not path.exists() and _has_glob(raw):
            for match in sorted(glob.glob(raw, recursive=True)):
                if Path(match).is_file():
                    yield Path(match)
        else:
            yield path


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; nothing meaningful is lost by dropping it.
    return text.replace("\x00", "")


def load_file(path: Path) -> LoadedDocument:
    """Read one file into a document, or a document carrying the reason it could not be read."""
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return LoadedDocument(
            source=source,
            error_kind="unsupported_format",
            error_message=f"unsupported file type {suffix or '(no extension)'!r}; "
            f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}",
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return LoadedDocument(source=source, error_kind="not_found", error_message=f"no such file: {source}")
    except OSError as e:
        return LoadedDocument(source=source, error_kind="unreadable", error_message=f"cannot read {source}: {e}")
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return LoadedDocument(
            source=source, sha256=digest, error_kind="undecodable",
            error_message=f"{source} is not valid UTF-8 text (byte {e.start}): {e.reason}",
        )
    return LoadedDocument(source=source, text=_clean(text), sha256=digest)


def iter_documents(inputs: Iterable[str]) -> Iterator[LoadedDocument]:
    """Documents for every input path, folder or glob, lazily."""
    for path in iter_paths(inputs):
        yield load_file(path)
