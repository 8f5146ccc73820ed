"""The ``submit`` options that say which files to read and how (shared by every task subcommand).

They arrive with the command's keyword arguments, and :func:`pop_source_options` takes them out
as one value: a task subcommand hands them on without naming each in its signature (adding a
source option never breaks a subcommand), and nothing travels through the Click context.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import click
from rich.filesize import decimal
from rich.progress import Progress, TaskID

from producer.loaders import LoadedDocument, LoadOptions, ReadStats

#: The keyword arguments SOURCE_OPTIONS add to a command.
SOURCE_OPTION_NAMES = ("include", "exclude", "hidden", "text_field", "id_field", "force")


def _option(*decls: str, **kw: Any) -> Any:
    return click.option(*decls, show_envvar=True, **kw)


SOURCE_OPTIONS = [
    _option("--include", multiple=True, metavar="GLOB", envvar="DOCQUEUE_INCLUDE",
            help="Read only files matching this glob (repeatable). A pattern without '/' matches the file "
            "name ('*.pdf'), one with '/' the path under the folder given ('2026/*.docx')."),
    _option("--exclude", multiple=True, metavar="GLOB", envvar="DOCQUEUE_EXCLUDE",
            help="Skip files matching this glob (repeatable; same matching as --include)."),
    _option("--hidden/--no-hidden", default=False, envvar="DOCQUEUE_HIDDEN",
            help="Also read hidden files and folders (names starting with '.') inside folders."),
    _option("--text-field", default="text", envvar="DOCQUEUE_TEXT_FIELD",
            help="JSONL/CSV exports: the field (column) holding each row's text."),
    _option("--id-field", default=None, envvar="DOCQUEUE_ID_FIELD",
            help="JSONL/CSV exports: the field holding each row's own id, returned as 'id' with the result."),
    _option("--clean-text/--no-clean-text", default=False, envvar="DOCQUEUE_CLEAN_TEXT",
            help="Remove NUL characters and replace lone surrogates (U+FFFD) in texts, which no database stores, "
            "recording what changed in the document's metadata (text_cleaned); by default such a document fails "
            "with invalid_text and its text is never changed."),
    _option("--force/--no-force", default=False, envvar="DOCQUEUE_FORCE",
            help="Run the model again even where the same content already has a result for this task, "
            "parameters and model (by default that result is reused)."),
]


def pop_source_options(kwargs: dict[str, Any]) -> tuple[LoadOptions, bool]:
    """``(LoadOptions, force)`` out of a command's keyword arguments (removed from them)."""
    values = {name: kwargs.pop(name, None) for name in SOURCE_OPTION_NAMES}
    options = LoadOptions(include=tuple(values.get("include") or ()), exclude=tuple(values.get("exclude") or ()),
                          hidden=bool(values.get("hidden")), text_field=values.get("text_field") or "text",
                          id_field=values.get("id_field") or None, clean_text=bool(values.get("clean_text")))
    return options, bool(values.get("force"))


def with_read_progress(documents: Iterable[LoadedDocument], stats: ReadStats, bar: Progress,
                       task: TaskID, every: int = 200) -> Iterator[LoadedDocument]:
    """``documents`` unchanged, while the progress bar shows files and bytes read so far (updated
    on every new file, and every ``every`` rows of a big export)."""
    last_files = -1
    for n, doc in enumerate(documents):
        if stats.files != last_files or n % every == 0:
            last_files = stats.files
            bar.update(task, files=stats.files, size=decimal(stats.bytes))
        yield doc
    bar.update(task, files=stats.files, size=decimal(stats.bytes))
