"""Which files a submission covers: files as given, folders walked, globs expanded, filtered.

Everything is lazy: a folder of 100,000 files is walked directory by directory and each file is
yielded as soon as it is found, so loading (and storing, and enqueueing) starts at once.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath


def _has_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def matches(relative: str, patterns: Sequence[str]) -> bool:
    """True when a pattern matches: one without ``/`` is tried on the file name (``*.pdf``), one
    with ``/`` on the path relative to the folder or glob root (``invoices/2026-*.pdf``)."""
    rel = PurePosixPath(relative.replace(os.sep, "/"))
    for pattern in patterns:
        target = rel.as_posix() if "/" in pattern else rel.name
        if fnmatchcase(target, pattern):
            return True
    return False


def selected(relative: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """``--include`` (any matches, when given) and not ``--exclude`` (none matches)."""
    if include and not matches(relative, include):
        return False
    return not (exclude and matches(relative, exclude))


def _walk(root: Path, hidden: bool) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if hidden or not d.startswith("."))
        for name in sorted(filenames):
            if hidden or not name.startswith("."):
                yield Path(dirpath) / name


def walk_order(path: Path) -> tuple[tuple[str, ...], str]:
    """The order :func:`_walk` yields files in (a folder's files by name, then each subfolder by
    name, depth first), as a sort key: glob matches are sorted by it too."""
    return path.parent.parts, path.name


def iter_paths(inputs: Iterable[str], include: Sequence[str] = (), exclude: Sequence[str] = (),
               hidden: bool = False) -> Iterator[Path]:
    """Every file named by ``inputs``: files as given, folders recursively and glob patterns
    (``**`` recurses) both in :func:`walk_order` (hidden files and folders skipped unless ``hidden``),
    inputs in the order given, each kept when it passes ``include``/``exclude``. A name matching
    nothing is yielded as is, so the loader reports it as missing instead of silently dropping it."""
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            for found in _walk(path, hidden):
                if selected(str(found.relative_to(path)), include, exclude):
                    yield found
        elif not path.exists() and _has_glob(raw):
            # glob skips dot-files itself; Python 3.11+ can be told not to
            matches_ = (glob.iglob(raw, recursive=True, include_hidden=True)
                        if hidden and sys.version_info >= (3, 11) else glob.iglob(raw, recursive=True))
            # in a folder's order (walk_order), not the directory's: the same files give the same
            # batch order, and so the same result order, whether named by a folder or a glob
            for match in sorted(matches_, key=lambda m: walk_order(Path(m))):
                if Path(match).is_file() and selected(match, include, exclude):
                    yield Path(match)
        elif selected(raw, include, exclude):
            yield path
